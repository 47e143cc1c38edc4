// Round trips through the real binaries: a kimberlite-server started with no configuration file
// (only the flags that pick free ports and a temp data dir, or nothing but a temp working
// directory), driven by kimberlite-cli processes and by the SDK against the same server.

import { strict as assert } from 'node:assert';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { verifyStreamChain } from '../src/client/client.js';
import { Harness } from './harness.js';
import type { RunResult } from './harness.js';

function jsonLines(result: RunResult): unknown[] {
  return result.stdout
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as unknown);
}

function ok(result: RunResult, what: string): RunResult {
  const detail = `${what}: exit ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`;
  assert.equal(result.code, 0, detail);
  return result;
}

const text = (data: Uint8Array): string => Buffer.from(data).toString('utf8');

test('CLI and SDK round trip against a server with no config file', async (t) => {
  // Proves that a server started with only --address/--metrics-address/--data-dir serves the
  // CLI and the SDK, that both see the same tenants, streams and events (data byte-exact, in
  // offset order, chain heads equal and recomputable), that a CLI error exits 1 with its stable
  // code, and that everything is still there after a graceful restart.
  const h = new Harness(t);
  const dataDir = await h.tempDir();
  const server = await h.startServer({ dataDir });
  const cluster = ['--cluster', server.address];
  const cli = (...args: string[]) => h.runCli([...cluster, '--json', ...args]);

  const tenantLines = jsonLines(ok(await cli('tenant', 'create', '--name', 'acme'), 'create'));
  assert.equal(tenantLines.length, 1);
  const tenant = tenantLines[0] as Record<string, unknown>;
  assert.equal(tenant['name'], 'acme');
  assert.equal(typeof tenant['created_at'], 'string');
  const tenantId = Number(tenant['tenant_id']);
  assert.ok(Number.isSafeInteger(tenantId));
  const created = jsonLines(
    ok(
      await cli('stream', 'create', '--tenant', 'acme', '--name', 'orders', '--data-class', 'PHI'),
      'stream create',
    ),
  )[0] as Record<string, unknown>;
  assert.equal(created['name'], 'orders');
  assert.equal(created['data_class'], 'PHI');
  const streamId = Number(created['stream_id']);
  assert.equal(created['tenant_id'], tenantId);

  const appendArgs = ['stream', 'append', '--tenant', 'acme', '--stream', 'orders'];
  const appended = jsonLines(
    ok(await cli(...appendArgs, '--data', '{"n":1}', '--data', '[{"n":2},"three"]'), 'append'),
  );
  assert.deepEqual(
    appended.map((line) => ({ ...(line as object), chain_head: 'x' })),
    [{ first_offset: 0, count: 3, chain_head: 'x' }],
  );

  const db = await h.connect({ addresses: [server.address] });
  assert.deepEqual(
    (await db.listTenants()).map((t) => [t.tenantId, t.name]),
    [[tenantId, 'acme']],
  );
  const sdkAppend = await db.append({ tenantId, streamId, events: ['{"n":4}', '{"n":5}'] });
  assert.equal(sdkAppend.firstOffset, 3);
  assert.equal(sdkAppend.count, 2);
  const read = await db.read({ tenantId, streamId });
  assert.deepEqual(
    read.events.map((event) => [event.offset, text(event.data)]),
    [
      [0, '{"n":1}'],
      [1, '{"n":2}'],
      [2, '"three"'],
      [3, '{"n":4}'],
      [4, '{"n":5}'],
    ],
  );

  const cliRead = jsonLines(
    ok(await cli('stream', 'read', '--tenant', String(tenantId), '--stream', 'orders'), 'read'),
  );
  assert.deepEqual(
    cliRead.map((line) => {
      const event = line as Record<string, unknown>;
      return [event['offset'], event['data']];
    }),
    [
      [0, { n: 1 }],
      [1, { n: 2 }],
      [2, 'three'],
      [3, { n: 4 }],
      [4, { n: 5 }],
    ],
  );

  const [summary] = await db.listStreams(tenantId);
  assert.ok(summary !== undefined);
  assert.equal(summary.nextOffset, 5);
  assert.equal(summary.chainHead, sdkAppend.chainHead);
  const verdict = verifyStreamChain({
    tenantId,
    streamId,
    events: read.events,
    expectedHead: summary.chainHead,
  });
  assert.ok(verdict.ok, JSON.stringify(verdict));
  const listed = jsonLines(ok(await cli('stream', 'list', '--tenant', 'acme'), 'stream list'));
  const row = (listed[0] as Array<Record<string, unknown>>)[0];
  assert.equal(row?.['next_offset'], 5);
  assert.equal(row?.['chain_head'], summary.chainHead);
  const verified = jsonLines(
    ok(await cli('stream', 'verify', '--tenant', 'acme', '--stream', 'orders'), 'stream verify'),
  );
  assert.deepEqual(verified, [{ ok: true, event_count: 5, chain_head: summary.chainHead }]);

  const duplicate = await h.runCli([...cluster, 'tenant', 'create', '--name', 'acme']);
  assert.equal(duplicate.code, 1, duplicate.stderr);
  assert.match(duplicate.stderr, /KMB_ERR_TENANT_EXISTS/);

  await db.close();
  assert.equal((await server.stop()).code, 0, server.describe());
  const restarted = await h.restart(server);
  const again = jsonLines(
    ok(
      await h.runCli([
        '--cluster',
        restarted.address,
        '--json',
        'stream',
        'read',
        '--tenant',
        'acme',
        '--stream',
        'orders',
      ]),
      'read after restart',
    ),
  );
  assert.deepEqual(again, cliRead);
});

test('with no --data-dir the server keeps its data in ./data of its working dir', async (t) => {
  // Proves the zero-configuration default: started in an empty working directory with only
  // address flags (to get free ports), the server creates ./data there and serves the SDK.
  const h = new Harness(t);
  const cwd = await h.tempDir();
  const server = await h.startServer({ cwd });
  assert.ok(existsSync(join(cwd, 'data')), 'the default data directory exists');
  const starting = server.lines.find((line) => line.message === 'Starting node');
  assert.equal(resolve(cwd, String(starting?.fields['data_dir'])), join(cwd, 'data'));
  const db = await h.connect({ addresses: [server.address] });
  const tenant = await db.createTenant('zero-config');
  const stream = await db.createStream({ tenantId: tenant.tenantId, name: 'log' });
  await db.append({ tenantId: tenant.tenantId, streamId: stream.streamId, events: ['hello'] });
  const read = await db.read({ tenantId: tenant.tenantId, streamId: stream.streamId });
  assert.deepEqual(
    read.events.map((event) => text(event.data)),
    ['hello'],
  );
});
