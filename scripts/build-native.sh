#!/bin/sh
# Builds the native addon. Serialised with flock so parallel builds never share build/ at once.
set -e
cd "$(dirname "$0")/.."
exec flock /tmp/tuntap-native-build.lock sh -c '[ -f build/Makefile ] || npx node-gyp configure; npx node-gyp build -j 2'
