// Proves the acknowledgement rule end to end inside one process: a node runs on a storage layer
// that records, in order, every write and fdatasync that reaches the disk, and the node marks
// each reply in the same log just before writing it to the client. For every reply we find the
// journal record of its op on disk and check that a datasync covering that record's last byte
// completed before the reply. Ten sessions append concurrently so that batching and group
// commit (several prepares per datasync) are exercised. (Group commit itself is proven by the
// journal's own tests; timing decides how much of it happens here, so this test does not count.)

import { strict as assert } from 'node:assert';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { decodeHeader, headerSizeBytes } from '../core/header.js';
import { asStreamId, asTenantId } from '../core/types.js';
import { Metrics } from '../observability/metrics.js';
import { silentLogger } from '../observability/logger.js';
import { realFileIO } from '../storage/file_io.js';
import { RecordingFileIO } from '../storage/recording_file_io.js';
import { segmentHeaderSizeBytes } from '../storage/segment_header.js';
import { RawClient, newClientId } from '../testing/raw_client.js';
import { KimberliteNode } from './node.js';
import type { NodeConfig } from './node.js';
import { singleNodeConfig } from './test_config.test-support.js';

function config(dataDir: string): NodeConfig {
  return singleNodeConfig(dataDir);
}

const audit = { actor: 'test', reason: 'ordering', correlationId: null };

/** Op → file position just past its record, by scanning the single journal segment. */
async function recordEnds(dataDir: string): Promise<{ path: string; ends: Map<number, number> }> {
  const dir = join(dataDir, 'journal');
  const names = (await readdir(dir)).filter((n) => n.endsWith('.kjl')).sort();
  assert.equal(names.length, 1, 'the test uses one segment');
  const path = join(dir, names[0] ?? '');
  const bytes = await readFile(path);
  const ends = new Map<number, number>();
  let position = segmentHeaderSizeBytes;
  while (position + headerSizeBytes <= bytes.length) {
    const decoded = decodeHeader(bytes.subarray(position));
    if (!decoded.ok) break;
    position += headerSizeBytes + decoded.header.bodySizeBytes;
    ends.set(decoded.header.op, position);
  }
  return { path, ends };
}

describe('node acknowledgement ordering', () => {
  it('replies to a write only after a datasync covering its record', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'kmb-node-'));
    const io = new RecordingFileIO(realFileIO);
    const node = await KimberliteNode.start({
      config: config(dataDir),
      logger: silentLogger(),
      metrics: new Metrics({ nodeId: 0 }),
      io,
      onReply: (_clientId, _requestNumber, op) => {
        if (op !== null) io.mark(`reply ${op}`);
      },
    });
    const client = await RawClient.connect(node.address);
    try {
      const admin = newClientId();
      await client.request(admin, 0, null);
      await client.request(admin, 1, { kind: 'create_tenant', name: 'acme', audit });
      await client.request(admin, 2, {
        kind: 'create_stream',
        tenantId: asTenantId(1),
        name: 's',
        dataClass: 'PHI',
        audit,
      });
      const sessions = Array.from({ length: 10 }, () => newClientId());
      await Promise.all(sessions.map((id) => client.request(id, 0, null)));
      await Promise.all(
        sessions.map(async (id) => {
          for (let n = 1; n <= 20; n++) {
            const answer = await client.request(id, n, {
              kind: 'append',
              tenantId: asTenantId(1),
              streamId: asStreamId(1),
              expectedOffset: null,
              events: [new TextEncoder().encode(`event ${n}`)],
              audit,
            });
            assert.equal(answer.kind, 'reply');
          }
        }),
      );
      await node.stop();
      const { path, ends } = await recordEnds(dataDir);
      let syncedEnd = 0;
      let writtenEnd = 0;
      let replies = 0;
      let prepares = 0;
      let syncs = 0;
      for (const event of io.events) {
        if (event.path === path && event.kind === 'write') {
          writtenEnd = Math.max(writtenEnd, (event.position ?? 0) + (event.sizeBytes ?? 0));
        } else if (event.path === path && event.kind === 'datasync') {
          syncedEnd = writtenEnd;
          syncs += 1;
        } else if (event.kind === 'mark' && event.detail?.startsWith('reply ') === true) {
          const op = Number(event.detail.slice('reply '.length));
          const end = ends.get(op);
          assert.ok(end !== undefined, `op ${op} is on disk`);
          assert.ok(end <= syncedEnd, `reply for op ${op} came before its datasync`);
          replies += 1;
        }
      }
      prepares = ends.size;
      assert.equal(replies, 3 + 10 + 200);
      assert.ok(syncs > 0 && prepares > 0);
    } finally {
      client.close();
      await node.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
