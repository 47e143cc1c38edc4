// Runs the VOPR benchmark (bench/vopr.bench.ts) at its small size, so that it cannot rot: proves
// it runs end to end and reports sane numbers. It asserts nothing about speed (HOUSE_RULES §9).

import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { formatRow, runVoprBench } from '../../bench/vopr.bench.js';

describe('VOPR benchmark (small)', () => {
  it('runs and reports ticks per second and seeds per minute', (t) => {
    // Proves the benchmark runs end to end; the numbers are printed, never judged.
    const rows = runVoprBench(true);
    assert.deepEqual(
      rows.map((r) => r.replicas),
      [1, 3, 5],
    );
    for (const row of rows) {
      assert.ok(row.ticks > 0 && row.ticksPerSecond > 0 && row.seedsPerMinute > 0);
      assert.match(row.resultHash, /^[0-9a-f]{16}$/);
      t.diagnostic(formatRow(row));
    }
  });
});
