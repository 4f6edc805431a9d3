// Worker entry for TypeScript test workers: registers tsx in this thread, then loads the
// TypeScript module named in workerData.entry.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.entry);
