// Proves that the backoff delay doubles per attempt up to its ceiling and that its jitter, taken
// from the random source passed in, keeps each delay within [d/2, d].

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backoffDelayMs } from './backoff.js';

describe('backoff', () => {
  it('doubles up to its ceiling with jitter in [d/2, d]', () => {
    const policy = { delayMsMin: 10, delayMsMax: 100 };
    assert.deepEqual(
      [0, 1, 2, 3, 4, 50].map((attempt) => backoffDelayMs(attempt, policy, () => 1)),
      [10, 20, 40, 80, 100, 100],
    );
    assert.equal(
      backoffDelayMs(3, policy, () => 0),
      40,
    );
    assert.equal(
      backoffDelayMs(3, policy, () => 0.5),
      60,
    );
  });
});
