// Exponential backoff with jitter for reconnects and retries. The delay doubles with each
// attempt up to a ceiling, and a random share of it is dropped so that many clients that lost
// the same replica do not come back in lockstep. Randomness is passed in so tests can fix it.

import { assert } from '../core/assert.js';

export interface BackoffPolicy {
  /** The delay before the first retry, before jitter. */
  readonly delayMsMin: number;
  /** The ceiling on any one delay. */
  readonly delayMsMax: number;
}

/**
 * 20 ms doubling to 250 ms. The ceiling bounds how long after a new leader is elected a client
 * that kept failing through the election notices it (with 1 s, the first write after a
 * failover came up to a second after the election); four tries a second per client is still
 * gentle on a cluster in trouble.
 */
export const defaultBackoff: BackoffPolicy = { delayMsMin: 20, delayMsMax: 250 };

/** The exponent past which the delay has long since reached its ceiling. */
const attemptExponentMax = 30;

/**
 * The delay before retry number `attempt` (from 0): uniformly in [d/2, d] where
 * d = min(delayMsMax, delayMsMin * 2^attempt) ("equal jitter").
 */
export function backoffDelayMs(
  attempt: number,
  policy: BackoffPolicy = defaultBackoff,
  random: () => number = Math.random,
): number {
  assert(Number.isInteger(attempt) && attempt >= 0, 'attempt must be a non-negative integer');
  assert(policy.delayMsMin > 0, 'delayMsMin must be positive');
  assert(policy.delayMsMax >= policy.delayMsMin, 'delayMsMax must be at least delayMsMin');
  const exponent = Math.min(attempt, attemptExponentMax);
  const ceiling = Math.min(policy.delayMsMax, policy.delayMsMin * 2 ** exponent);
  const delayMs = ceiling / 2 + (ceiling / 2) * random();
  assert(delayMs >= 0 && delayMs <= policy.delayMsMax, 'delay within bounds');
  return Math.round(delayMs);
}

/** Resolves after delayMs. */
export function sleep(delayMs: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, delayMs)));
}
