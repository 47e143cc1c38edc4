// Proves that the rate limiter passes the first occurrence of a key, drops the rest within the
// interval, reports how many it dropped with the next one it passes, keeps keys apart, and
// stays within its key bound by forgetting the oldest key.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RateLimiter, suppressed } from './rate_limiter.js';

test('first passes, repeats within the interval are counted, then one passes', () => {
  const limiter = new RateLimiter();
  assert.equal(limiter.admit('a', 1000, 0), 0);
  assert.equal(limiter.admit('a', 1000, 10), suppressed);
  assert.equal(limiter.admit('a', 1000, 999), suppressed);
  assert.equal(limiter.admit('b', 1000, 999), 0);
  assert.equal(limiter.admit('a', 1000, 1000), 2);
  assert.equal(limiter.admit('a', 1000, 1500), suppressed);
  assert.equal(limiter.admit('a', 1000, 2000), 1);
  assert.equal(limiter.admit('a', 1000, 5000), 0);
});

test('the oldest key is forgotten past the bound', () => {
  const limiter = new RateLimiter(2);
  limiter.admit('a', 1000, 0);
  limiter.admit('b', 1000, 0);
  limiter.admit('c', 1000, 0);
  assert.equal(limiter.size, 2);
  assert.equal(limiter.admit('a', 1000, 1), 0);
  assert.equal(limiter.admit('c', 1000, 1), suppressed);
});
