// LogSuffix.requestCountBetween, which the replica's invariants call after every entry point
// (replica.ts): for any log and any bounds it equals the sum over range(), the sorted walk it
// replaced, including entries pending beyond the journal without a prepare and bounds past
// either end.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { rootPrepare } from '../core/header.js';
import { makeChain } from '../storage/test_support.js';
import { LogSuffix } from './log_suffix.js';

const cluster = 7;

function chain(requestCounts: readonly number[]) {
  const bodies = requestCounts.map((_, index) => new Uint8Array([index & 0xff]));
  return makeChain(bodies, { cluster, requestCounts });
}

describe('LogSuffix.requestCountBetween', () => {
  it('equals the sum of requestCount over range() for any log and bounds', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 32 }), { minLength: 1, maxLength: 24 }),
        fc.nat(),
        fc.nat({ max: 4 }),
        fc.array(fc.tuple(fc.integer({ min: -2, max: 40 }), fc.integer({ min: -2, max: 40 }))),
        (requestCounts, executedSeed, pendingCount, bounds) => {
          const prepares = chain(requestCounts);
          const log = new LogSuffix(rootPrepare(cluster).header.checksum);
          const journaled = prepares.slice(0, prepares.length - Math.min(pendingCount, 2));
          for (const prepare of journaled) log.appendNext(prepare);
          // The rest wait beyond the journal: one with its prepare, one known by checksum only.
          for (const [index, prepare] of prepares.slice(journaled.length).entries()) {
            const { op, checksum } = prepare.header;
            log.putPending(op, checksum, index === 0 ? prepare : null, true);
          }
          const executed = executedSeed % (journaled.length + 1);
          for (let i = 0; i < executed; i++) log.advanceBase();
          for (const [from, to] of bounds) {
            const expected = log
              .range(from, to)
              .reduce((sum, entry) => sum + (entry.prepare?.header.requestCount ?? 0), 0);
            assert.equal(log.requestCountBetween(from, to), expected, `(${from}, ${to}]`);
          }
          log.check();
        },
      ),
      { numRuns: 300 },
    );
  });
});
