// `tuntap show`: see link.ts.
export { runShow as run } from './link.js';
