// Proves that the offline tools execute a journal exactly as the replica did once client sessions
// have been evicted. A single in-process node runs with a client table of 3 sessions; an admin
// and more clients than the bound register, so sessions are evicted oldest-first; an evicted
// client's retry is refused, and it registers again under the same client id and appends from
// request 1 (a fresh session). After a clean stop, `kimberlite-admin verify`'s replay
// (replayDataDir) must reach the node's own state digest, and the audit export must show every
// command the node answered with the outcome the node answered. Both read the bound from the
// superblock, which the node recorded at format time. An offline executor that keeps every
// session (no eviction) ignores the second register, skips the fresh session's requests, and
// disagrees on both counts.

import { strict as assert } from 'node:assert';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { toHex } from '../core/checksum.js';
import { clusterIdFromName } from '../core/header.js';
import { asStreamId, asTenantId } from '../core/types.js';
import type { ClientId } from '../core/types.js';
import type { Command } from '../kernel/kernel.js';
import { Metrics } from '../observability/metrics.js';
import { silentLogger } from '../observability/logger.js';
import { readSuperblock } from '../storage/superblock.js';
import { replayDataDir } from '../cli/admin_replay.js';
import { RawClient, newClientId } from '../testing/raw_client.js';
import { exportAudit } from './audit_export.js';
import { KimberliteNode } from './node.js';
import { singleNodeConfig } from './test_config.test-support.js';

const sessionCountMax = 3;
const audit = { actor: 'test', reason: 'eviction', correlationId: null };
const encoder = new TextEncoder();

function append(text: string): Command {
  return {
    kind: 'append',
    tenantId: asTenantId(1),
    streamId: asStreamId(1),
    expectedOffset: null,
    events: [encoder.encode(text)],
    audit,
  };
}

interface Answered {
  readonly clientId: ClientId;
  readonly requestNumber: number;
  readonly op: number;
}

/** Runs the eviction workload; returns the commands the node answered with a reply. */
async function workload(client: RawClient): Promise<Answered[]> {
  const answered: Answered[] = [];
  const send = async (id: ClientId, n: number, command: Command | null): Promise<boolean> => {
    const answer = await client.request(id, n, command);
    if (answer.kind !== 'reply') return false;
    if (command !== null) answered.push({ clientId: id, requestNumber: n, op: answer.reply.op });
    return true;
  };
  const admin = newClientId();
  assert.ok(await send(admin, 0, null));
  assert.ok(await send(admin, 1, { kind: 'create_tenant', name: 'acme', audit }));
  const stream: Command = {
    kind: 'create_stream',
    tenantId: asTenantId(1),
    name: 's',
    dataClass: 'PHI',
    audit,
  };
  assert.ok(await send(admin, 2, stream));
  const clients = [newClientId(), newClientId(), newClientId(), newClientId()];
  for (const [index, id] of clients.entries()) {
    // The third and fourth registers evict the admin, then the first client.
    assert.ok(await send(id, 0, null));
    assert.ok(await send(id, 1, append(`client ${index} first`)));
  }
  // Retries of evicted sessions are refused: they never reach the log.
  assert.equal(await send(admin, 3, append('admin after eviction')), false);
  // The admin registers again under the same id (evicting the oldest) and starts over at 1.
  assert.ok(await send(admin, 0, null));
  assert.ok(await send(admin, 1, append('admin fresh session 1')));
  assert.ok(await send(admin, 2, append('admin fresh session 2')));
  const [first = admin] = clients;
  assert.equal(await send(first, 2, append('first client after eviction')), false);
  assert.ok(await send(first, 0, null));
  assert.ok(await send(first, 1, append('first client fresh session')));
  return answered;
}

describe('session eviction: replica, verify and audit export agree', () => {
  it('replays to the replica state digest and exports the outcomes the replica answered', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'kmb-evict-'));
    const config = singleNodeConfig(dataDir, { clientSessionCountMax: sessionCountMax });
    const node = await KimberliteNode.start({
      config,
      logger: silentLogger(),
      metrics: new Metrics({ nodeId: 0 }),
    });
    const client = await RawClient.connect(node.address);
    try {
      const answered = await workload(client);
      const digest = toHex(node.stateDigest());
      client.close();
      await node.stop();
      const superblock = await readSuperblock(dataDir);
      assert.equal(superblock?.state?.clientSessionCountMax, sessionCountMax);

      const replay = await replayDataDir(dataDir, clusterIdFromName(config.clusterName));
      assert.deepEqual(replay.problems, []);
      assert.equal(replay.skippedCount, 0, 'the replica applied every logged command');
      assert.equal(replay.stateDigest, digest, "verify's replay reaches the replica's state");

      const document = await exportAudit({ dataDir, startUs: 0, endUs: Number.MAX_SAFE_INTEGER });
      for (const reply of answered) {
        const prepare = document.prepares.find((p) => p.op === reply.op);
        const command = prepare?.commands.find(
          (c) => c.client_id === reply.clientId && c.request_number === reply.requestNumber,
        );
        assert.ok(command !== undefined, `op ${reply.op} is exported`);
        assert.equal(command.outcome.status, 'ok', `op ${reply.op} client ${reply.clientId}`);
      }
    } finally {
      client.close();
      await node.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
