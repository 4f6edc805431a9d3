// The public entry: the most used parts of each layer. Subpath exports give the whole layers.
export { TuntapError } from './errors.js';
export { inNetns, openNetns, closeNetns, Netns } from './netns.js';
export type { NetnsRef } from './netns.js';
