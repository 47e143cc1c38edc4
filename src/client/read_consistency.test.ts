// Proves the SDK's read consistency plumbing against the in-process fake node: a plain read goes
// out without a consistency (the node treats that as linearizable), a stale read carries
// {stale, lagOpsMax} with its default or the bound given, events() passes the choice to every
// page, and bad options fail before anything is sent.

import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { KmbError } from '../core/errors.js';
import type { QueryMessage } from '../net/client_protocol.js';
import { FakeServer } from '../testing/fake_server.js';
import { connect, staleReadLagOpsMaxDefault } from './client.js';

const opened: Array<{ close(): Promise<void> }> = [];
after(async () => {
  for (const item of opened.reverse()) await item.close();
});

describe('read consistency', () => {
  it('sends the consistency a read asks for', async () => {
    const queries: QueryMessage[] = [];
    const server = await FakeServer.start({
      hooks: {
        onQuery: (query) => {
          queries.push(query);
          return 'answer';
        },
      },
    });
    opened.push(server);
    const db = await connect({ addresses: [server.address], actor: 't' });
    opened.push(db);
    const tenant = await db.createTenant('reads');
    const stream = await db.createStream({ tenantId: tenant.tenantId, name: 's' });
    const target = { tenantId: tenant.tenantId, streamId: stream.streamId };
    await db.append({ ...target, events: ['a', 'b', 'c'] });
    queries.length = 0;

    await db.read(target);
    await db.read(target, { consistency: 'stale' });
    await db.read(target, { consistency: 'stale', lagOpsMax: 0 });
    const seen: string[] = [];
    for await (const event of db.events({ ...target, count: 3 }, { consistency: 'stale' })) {
      seen.push(Buffer.from(event.data).toString());
    }
    assert.deepEqual(seen, ['a', 'b', 'c']);
    assert.deepEqual(
      queries.map((query) => query.consistency),
      [
        undefined,
        { kind: 'stale', lagOpsMax: staleReadLagOpsMaxDefault },
        { kind: 'stale', lagOpsMax: 0 },
        { kind: 'stale', lagOpsMax: staleReadLagOpsMaxDefault },
      ],
    );

    const before = server.queryCount;
    const invalid = (error: unknown): boolean =>
      error instanceof KmbError && error.code === 'KMB_ERR_INVALID_ARGUMENT';
    await assert.rejects(db.read(target, { consistency: 'stale', lagOpsMax: -1 }), invalid);
    await assert.rejects(db.read(target, { lagOpsMax: 5 }), invalid);
    const bogus = { consistency: 'eventual' } as unknown as { consistency: 'stale' };
    await assert.rejects(db.read(target, bogus), invalid);
    assert.equal(server.queryCount, before, 'nothing was sent');
  });
});
