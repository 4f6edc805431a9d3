// `tuntap del`: see link.ts.
export { runDel as run } from './link.js';
