// Proves that the replica's telemetry `event` effects are telemetry only (HOUSE_RULES §3): the
// same workload runs on two in-process single nodes, one performing every effect and one
// dropping every `event` effect, with the same fixed wall clock (so prepare timestamps, which the
// replica keeps strictly increasing, are the same). Both must end in the same kernel state digest,
// answer the same linearizable reads of a stream through the read index (fed by `applied` data
// effects, readable once the `reads_ready` data effect says so), and answer each write at the
// same op. Before the data effects existed, the index and read readiness were fed by events, so
// the node that dropped them answered no read.

import { strict as assert } from 'node:assert';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { toHex } from '../core/checksum.js';
import { asOffset, asStreamId, asTenantId } from '../core/types.js';
import type { Command } from '../kernel/kernel.js';
import { Metrics } from '../observability/metrics.js';
import { silentLogger } from '../observability/logger.js';
import { RawClient, newClientId } from '../testing/raw_client.js';
import { KimberliteNode } from './node.js';
import { singleNodeConfig } from './test_config.test-support.js';

const audit = { actor: 'test', reason: 'telemetry', correlationId: null };
const appendCount = 20;
const clockUs = 1_700_000_000_000_000;

interface RunResult {
  readonly digest: string;
  readonly ops: readonly number[];
  readonly reads: readonly string[];
}

async function run(dropTelemetryEvents: boolean): Promise<RunResult> {
  const dataDir = await mkdtemp(join(tmpdir(), 'kmb-telemetry-'));
  const node = await KimberliteNode.start({
    config: singleNodeConfig(dataDir),
    logger: silentLogger(),
    metrics: new Metrics({ nodeId: 0 }),
    realtimeUs: () => clockUs,
    dropTelemetryEvents,
  });
  const client = await RawClient.connect(node.address);
  try {
    const id = newClientId();
    const ops: number[] = [];
    const send = async (n: number, command: Command | null): Promise<void> => {
      const answer = await client.request(id, n, command);
      assert.equal(answer.kind, 'reply', `request ${n} answered`);
      if (answer.kind === 'reply') ops.push(answer.reply.op);
    };
    await send(0, null);
    await send(1, { kind: 'create_tenant', name: 'acme', audit });
    const tenantId = asTenantId(1);
    await send(2, { kind: 'create_stream', tenantId, name: 's', dataClass: 'PHI', audit });
    const streamId = asStreamId(1);
    for (let n = 0; n < appendCount; n++) {
      const events = [new TextEncoder().encode(`event ${n}`)];
      await send(3 + n, {
        kind: 'append',
        tenantId,
        streamId,
        expectedOffset: null,
        events,
        audit,
      });
    }
    const reads: string[] = [];
    for (const fromOffset of [0, 7, appendCount - 1]) {
      const query = { kind: 'read_stream' as const, tenantId, streamId, limit: 100 };
      const result = await client.query({ ...query, fromOffset: asOffset(fromOffset) });
      assert.equal(result.kind, 'read_stream');
      if (result.kind !== 'read_stream') continue;
      const events = result.events.map((e) => `${e.offset}@${e.timestampUs}:${toHex(e.data)}`);
      reads.push(`${events.join(',')} next ${result.nextOffset}`);
    }
    return { digest: toHex(node.stateDigest()), ops, reads };
  } finally {
    client.close();
    await node.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

describe('telemetry events', () => {
  it('can all be dropped without changing the state, the replies or the read index', async () => {
    const kept = await run(false);
    const dropped = await run(true);
    assert.equal(kept.reads.length, 3);
    assert.ok(kept.reads[0]?.includes(toHex(new TextEncoder().encode('event 19'))));
    assert.deepEqual(dropped.ops, kept.ops, 'each write committed at the same op');
    assert.deepEqual(dropped.reads, kept.reads, 'the read index answers the same');
    assert.equal(dropped.digest, kept.digest, 'the same kernel state');
  });
});
