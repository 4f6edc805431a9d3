#!/bin/sh
# Builds the native addon incrementally. Serialised with flock so parallel builds never share
# build/ at once. Uses the node-gyp that npm bundles (on PATH inside npm scripts).
set -e
cd "$(dirname "$0")/.."
if ! command -v node-gyp >/dev/null 2>&1; then
  npm_dir=$(dirname "$(readlink -f "$(command -v npm)")")/..
  PATH="$npm_dir/node_modules/node-gyp/bin:$npm_dir/bin/node-gyp-bin:$PATH"
  export PATH
fi
exec flock /tmp/tuntap-native-build.lock sh -c '[ -f build/Makefile ] || node-gyp configure; node-gyp build -j 2'
