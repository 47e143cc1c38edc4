// Assertions for programmer errors only (HOUSE_RULES §5). They are always on. An AssertionError
// is never caught: the process dies, the supervisor restarts it, and the journal is intact.
// Never assert on bytes that came from outside; validate those and answer with a KmbError.

export class AssertionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AssertionError';
  }
}

export function assert(condition: unknown, message?: string): asserts condition {
  if (!condition) {
    throw new AssertionError(message ?? 'assertion failed');
  }
}

/** Marks a branch that a correct program never reaches (exhaustive switches). */
export function unreachable(value: never, message?: string): never {
  throw new AssertionError(message ?? `unreachable: ${String(value)}`);
}
