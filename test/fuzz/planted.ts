// Targets with planted bugs, for the framework's own tests (fuzz.test.ts): a job must turn each
// into a finding that names the input — an untyped error, a broken invariant, a loop that never
// returns, an exception thrown later from a callback.
import { check, type BytesTarget, type Target, type TextTarget } from './framework.js';

const base = { layer: 'packet', about: 'a planted bug', weight: 1 } as const;
const bytes = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8, 9, 10);

export const plantedError: BytesTarget = {
  ...base, kind: 'bytes', name: 'planted-error',
  isTyped: (e) => e instanceof RangeError,
  corpus: () => [bytes],
  create: () => ({
    run(b) {
      if (b.includes(0x42)) throw new TypeError('planted: a byte 0x42');
      if (b.length === 0) throw new RangeError('the typed rejection');
      return 'accepted';
    },
  }),
};

const plantedViolation: TextTarget = {
  ...base, kind: 'text', name: 'planted-violation', dictionary: ['key', 'value', '='],
  isTyped: () => false,
  corpus: () => ['key = value\nother = 1'],
  create: () => ({ run: (s) => check(!s.includes('=='), 'planted: a doubled "="') }),
};

const plantedHang: BytesTarget = {
  ...base, kind: 'bytes', name: 'planted-hang',
  isTyped: () => false,
  corpus: () => [bytes],
  create: () => ({ run(b) { if (b[0] === 0xff) for (;;) { /* planted: never returns */ } } }),
};

const plantedCrash: BytesTarget = {
  ...base, kind: 'bytes', name: 'planted-crash',
  isTyped: () => false,
  corpus: () => [bytes],
  // Like a socket handler: the exception leaves from a callback, not from run().
  create: () => ({
    run: (b) => new Promise<string>((resolve) => setImmediate(() => {
      if (b[0] === 0x99) throw new Error('planted: thrown from a callback');
      resolve('accepted');
    })),
  }),
};

export const targets: Target[] = [plantedError, plantedViolation, plantedHang, plantedCrash];
