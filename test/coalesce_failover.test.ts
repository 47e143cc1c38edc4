// Coalesced appends across a leader SIGKILL, with real processes: one SDK client with
// coalesceAppends and pipelineMax 4 carries 64 concurrent callers, each appending one unique
// event at a time; the leader is killed mid-load.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KmbError } from '../src/client/client.js';
import { Harness, sleep } from './harness.js';
import {
  TestCluster,
  createStreams,
  hangTimeoutMs,
  unknownOutcomeCodes,
} from './cluster_harness.js';

test(
  'coalesced appends survive a leader SIGKILL: each acknowledged call at its offset, once',
  { timeout: hangTimeoutMs },
  async (t) => {
    // Proves that merging calls into shared commands keeps the write contract under failover:
    // the commands in flight when the leader dies are retried with their request numbers, so no
    // call is applied twice, and every call that was acknowledged (each with its own offset) is
    // found at exactly that offset, once, in a linearizable read afterwards. Calls that failed
    // with an unknown outcome (timeout, lost connection) may be there or not, but at most once.
    // It also checks that merging happened: fewer append commands reached the log than calls.
    const h = new Harness(t);
    const cluster = await TestCluster.start(h, { name: 'coalesce' });
    const first = await cluster.waitForLeader();
    const [target] = await createStreams(cluster, 'coalesce', 1);
    assert.ok(target !== undefined);
    const client = await cluster.connect({
      coalesceAppends: true,
      pipelineMax: 4,
      requestTimeoutMs: 20_000,
    });
    const acks: Array<{ event: string; offset: number; calledAtMs: number }> = [];
    const unexpected: string[] = [];
    let running = true;
    let callCount = 0;
    const callers = Array.from({ length: 64 }, async (_, caller) => {
      for (let n = 0; running; n++) {
        const event = `c${caller}-${n}`;
        const calledAtMs = performance.now();
        callCount += 1;
        try {
          const result = await client.append({ ...target, events: [event] });
          assert.equal(result.count, 1);
          acks.push({ event, offset: result.firstOffset, calledAtMs });
        } catch (error) {
          if (error instanceof KmbError && unknownOutcomeCodes.has(error.code)) continue;
          unexpected.push(`${event}: ${String(error)}`);
          return;
        }
      }
    });
    await sleep(1000);
    const killedAtMs = performance.now();
    await cluster.kill(first.leader);
    const second = await cluster.waitForLeader({
      excluding: [first.leader],
      viewAbove: first.view,
    });
    const deadline = performance.now() + 60_000;
    while (acks.filter((a) => a.calledAtMs > killedAtMs).length < 500) {
      assert.ok(performance.now() < deadline, 'appends resume after the failover');
      await sleep(50);
    }
    running = false;
    await Promise.all(callers);
    await client.close();
    assert.deepEqual(unexpected, []);

    const reader = await cluster.connect({ requestTimeoutMs: 20_000 });
    const events: string[] = [];
    for await (const event of reader.events({ ...target })) {
      events.push(Buffer.from(event.data).toString('utf8'));
    }
    await reader.close();
    assert.equal(new Set(events).size, events.length, 'no event is in the stream twice');
    for (const ack of acks) {
      assert.equal(events[ack.offset], ack.event, `${ack.event} at its acknowledged offset`);
    }
    const offsets = new Set(acks.map((a) => a.offset));
    assert.equal(offsets.size, acks.length, 'no two calls were given the same offset');
    const status = await cluster.status(second.leader);
    t.diagnostic(
      `${callCount} calls, ${acks.length} acknowledged, ${events.length} events in the stream, ` +
        `log at op ${status.opNumber} (commands and registrations included)`,
    );
    assert.ok(status.opNumber < acks.length / 2, 'calls were merged into far fewer commands');
  },
);
