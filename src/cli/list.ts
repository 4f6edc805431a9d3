// `tuntap list`: see link.ts.
export { runList as run } from './link.js';
