// `tuntap add`: see link.ts.
export { runAdd as run } from './link.js';
