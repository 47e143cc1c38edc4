// Tests of session admission: the token bucket is checked against its definition with
// fast-check (over any sequence of takes at non-decreasing times, the takes granted never
// exceed the burst plus the rate times the time elapsed, and a take is refused only when fewer
// than one token could have accrued), and SessionAdmission with an injected clock: the
// per-connection session count, free re-registration of a known client id, the rate limit,
// independence between connections, and the refusal counters.

import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { asClientId } from '../core/types.js';
import type { ClientId } from '../core/types.js';
import { CounterCell } from '../observability/metric_cells.js';
import { silentLogger } from '../observability/logger.js';
import { SessionAdmission, TokenBucket } from './session_admission.js';
import type { SessionAdmissionLimits, SessionRefusalReason } from './session_admission.js';

function id(n: number): ClientId {
  return asClientId(n.toString(16).padStart(32, '0'));
}

function admission(limits: SessionAdmissionLimits, clock: { nowMs: number }) {
  const refused: Record<SessionRefusalReason, CounterCell> = {
    sessions_per_connection: new CounterCell({}),
    register_rate: new CounterCell({}),
  };
  const logger = silentLogger();
  const sessions = new SessionAdmission({ limits, logger, refused, nowMs: () => clock.nowMs });
  return { sessions, refused };
}

describe('token bucket', () => {
  it('grants at most burst + rate x elapsed, and refuses only when empty', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1000 }),
        fc.integer({ min: 1, max: 300 }),
        fc.array(fc.integer({ min: 0, max: 500 }), { maxLength: 300 }),
        (ratePerSecond, burst, gapsMs) => {
          const bucket = new TokenBucket(ratePerSecond, burst, 0);
          let nowMs = 0;
          let granted = 0;
          for (const gapMs of gapsMs) {
            nowMs += gapMs;
            const before = bucket.available(nowMs);
            const took = bucket.take(nowMs);
            if (took) granted += 1;
            assert.equal(took, before >= 1, 'refused exactly when less than a token is left');
            const allowed = burst + (nowMs * ratePerSecond) / 1000;
            assert.ok(granted <= allowed + 1e-9, `${granted} granted > ${allowed} allowed`);
            assert.ok(bucket.available(nowMs) <= burst, 'never more than the burst');
          }
        },
      ),
    );
  });

  it('refills after a pause and a clock step back adds nothing', () => {
    const bucket = new TokenBucket(10, 2, 1000);
    assert.ok(bucket.take(1000));
    assert.ok(bucket.take(1000));
    assert.ok(!bucket.take(1000));
    assert.ok(!bucket.take(900), 'time going back grants nothing');
    assert.ok(!bucket.take(1050), 'half a token after 50 ms');
    assert.ok(bucket.take(1100), 'a whole token after 100 ms');
  });
});

describe('session admission', () => {
  it('limits distinct sessions per connection; a known client id is admitted again', () => {
    const clock = { nowMs: 0 };
    const limits = { sessionCountMax: 3, registerRatePerSecond: 1000, registerBurst: 100 };
    const { sessions, refused } = admission(limits, clock);
    const connection = {};
    for (let n = 0; n < 3; n++) assert.equal(sessions.admit(connection, id(n), 'r'), null);
    const message = sessions.admit(connection, id(3), 'r');
    assert.match(message ?? '', /sessions_per_connection_max/);
    assert.match(message ?? '', /3 sessions/);
    assert.equal(sessions.admit(connection, id(1), 'r'), null, 'a retried register is free');
    assert.equal(sessions.admit({}, id(3), 'r'), null, 'another connection has its own count');
    assert.equal(refused.sessions_per_connection.value, 1);
    assert.equal(refused.register_rate.value, 0);
  });

  it('limits the registration rate per connection with a token bucket', () => {
    const clock = { nowMs: 0 };
    const limits = { sessionCountMax: 100, registerRatePerSecond: 2, registerBurst: 2 };
    const { sessions, refused } = admission(limits, clock);
    const connection = {};
    assert.equal(sessions.admit(connection, id(0), 'r'), null);
    assert.equal(sessions.admit(connection, id(1), 'r'), null);
    assert.match(sessions.admit(connection, id(2), 'r') ?? '', /session_registrations_per_second/);
    assert.equal(refused.register_rate.value, 1);
    clock.nowMs = 500;
    assert.equal(sessions.admit(connection, id(2), 'r'), null, 'one token after 500 ms');
    assert.notEqual(sessions.admit(connection, id(3), 'r'), null);
    assert.equal(refused.register_rate.value, 2);
  });
});
