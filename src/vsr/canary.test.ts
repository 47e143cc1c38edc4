// Canaries (DESIGN §8): each deliberate bug of ReplicaOptions.canary, switched on, must produce a
// violation the safety checks observe, so the simulator's checkers have something to catch; the
// same scenario without the canary must be safe (the scenario, not luck, exposes the bug).
// Each scenario is one function run twice: with the canary (violations expected) and without.

import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { asReplicaIndex, asView } from '../core/types.js';
import type { ReplicaMessage } from './message.js';
import type { Canary } from './replica.js';
import { Scenario } from './testing_harness.test-support.js';

/** A single replica replies before its write is durable; a crash then loses the write. */
function ackBeforeFsync(canary: Canary | undefined): Scenario {
  const t = new Scenario({ replicaCount: 1, ...(canary === undefined ? {} : { canary }) });
  const c = t.client().register();
  t.runUntil(() => c.idle, 'register');
  t.replica(0).node.syncStalled = true;
  c.command(5);
  t.run(5);
  t.replica(0).crash().restart();
  const other = t.client().register().command(7);
  t.runUntil(() => other.idle, 'another client writes');
  t.runUntil(() => c.idle, 'the first client', 500);
  return t;
}

/** An isolated primary commits on its own acknowledgement; the majority commits other ops. */
function commitWithoutQuorum(canary: Canary | undefined): Scenario {
  const t = new Scenario({ replicaCount: 3, ...(canary === undefined ? {} : { canary }) });
  const c = t.client().register();
  t.runUntil(() => c.idle, 'register');
  t.replica(0).isolate();
  c.command(5);
  t.run(3);
  const other = t.client();
  other.target = 1;
  other.unreachable.add(0);
  other.register().command(7);
  t.runUntil(() => other.idle, 'the majority serves another client', 3_000);
  t.heal();
  t.runUntil(() => c.idle, 'the first client', 3_000);
  t.run(60);
  return t;
}

/** The new primary adopts the shorter log, losing an op that had committed. */
function adoptWrongLog(canary: Canary | undefined): Scenario {
  const t = new Scenario({ replicaCount: 3, ...(canary === undefined ? {} : { canary }) });
  const c = t.client().register();
  t.runUntil(() => c.idle, 'register');
  t.partition([0, 1], [2]);
  c.command(5);
  t.settle(); // Committed by 0 with 1's acknowledgement; 1 does not know it committed.
  assert.equal(c.replies.length, 2);
  t.replica(0).crash();
  t.heal();
  const other = t.client();
  other.target = 1;
  other.register().command(7);
  t.runUntil(() => other.idle, 'the new primary serves', 3_000);
  t.run(60);
  return t;
}

/** A lagging replica repairs from a copy whose body was altered in flight. */
function skipRepairChecksum(canary: Canary | undefined): Scenario {
  const t = new Scenario({ replicaCount: 3, ...(canary === undefined ? {} : { canary }) });
  const c = t.client().register();
  t.runUntil(() => c.idle, 'register');
  t.replica(2).isolate();
  for (let i = 1; i <= 10; i++) c.command(1);
  t.runUntil(() => c.idle, 'commands without replica 2');
  let tampered = false;
  t.tamper = ({ message, to }): ReplicaMessage => {
    if (tampered || to !== 2 || message.kind !== 'repair_prepare') return message;
    if (message.prepare.header.op !== 4) return message;
    tampered = true;
    const body = message.prepare.body.slice();
    body[body.length - 2] = 50;
    return { ...message, prepare: { ...message.prepare, body } };
  };
  t.heal();
  t.runUntil(() => t.replica(2).r.commitMin === 11, 'replica 2 catches up');
  return t;
}

/** A client whose reply was lost retries; the retry is prepared and applied again. */
function noDuplicateDetection(canary: Canary | undefined): Scenario {
  const t = new Scenario({ replicaCount: 3, ...(canary === undefined ? {} : { canary }) });
  const c = t.client().register();
  t.runUntil(() => c.idle, 'register');
  c.dropReplies = 1;
  c.command(5);
  t.runUntil(() => c.idle, 'the retry is answered');
  t.run(30);
  return t;
}

/** The primary crashes; a forged proposal of a view past the wire's u32 reaches the backups. */
function trustPeerNumbers(canary: Canary | undefined): Scenario {
  const t = new Scenario({ replicaCount: 3, ...(canary === undefined ? {} : { canary }) });
  const c = t.client().register();
  t.runUntil(() => c.idle, 'register');
  t.replica(0).crash();
  t.run(120); // The backups stop hearing their primary.
  for (const to of [1, 2]) {
    const forged = { kind: 'start_view_change', replica: asReplicaIndex(0), view: asView(2 ** 32) };
    t.inject(to, forged as ReplicaMessage);
  }
  t.run(400);
  return t;
}

const scenarios: [Canary, (canary: Canary | undefined) => Scenario][] = [
  ['ack_before_fsync', ackBeforeFsync],
  ['commit_without_quorum', commitWithoutQuorum],
  ['adopt_wrong_log', adoptWrongLog],
  ['skip_repair_checksum', skipRepairChecksum],
  ['no_duplicate_detection', noDuplicateDetection],
  ['trust_peer_numbers', trustPeerNumbers],
];

describe('canaries', () => {
  for (const [canary, scenario] of scenarios) {
    it(`${canary}: the checks see a violation, and none without the canary`, () => {
      // Proves the canary is a real, observable bug in this scenario, and the scenario is safe
      // with the production replica.
      const buggy = scenario(canary).violations();
      assert.ok(buggy.length > 0, `${canary} went unnoticed`);
      const correct = scenario(undefined).violations();
      assert.deepEqual(correct, [], `the scenario without ${canary} is safe`);
    });
  }

  it('each canary names its violation as the checks report it', () => {
    // Proves each canary breaks the property it is meant to (documents what a checker sees).
    const expected: Record<Canary, RegExp> = {
      ack_before_fsync: /acknowledged request .* is not at op/,
      commit_without_quorum: /committed different prepares|is not at op/,
      adopt_wrong_log: /is not at op/,
      skip_repair_checksum: /differ in state/,
      no_duplicate_detection: /applied .* twice/,
      trust_peer_numbers: /(sent|persisted) view 4294967296/,
    };
    for (const [canary, scenario] of scenarios) {
      const violations = scenario(canary).violations();
      assert.ok(
        violations.some((v) => expected[canary].test(v)),
        `${canary}: ${violations.join('; ')}`,
      );
    }
  });
});
