// Proves kimberlite-cli's contract by running runCli() in-process against the fake node of
// src/client/fake_server.ts, capturing stdout and stderr: the exact --json shapes of every
// command, readable output without --json, tenants and streams found by id or by name, --data
// arrays and NDJSON on stdin sent in bounded batches (one append each), the audit flags reaching
// the command, and the error contract (exit 1 with `error: CODE: message` or a JSON error on
// stderr, exit 2 for usage mistakes, which never reach the server).

import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { FakeServer } from '../testing/fake_server.js';
import { decodeCommand } from '../kernel/kernel.js';
import { runCli } from './cli.js';
import { stdinBatchEventCountMax } from './cli_commands.js';

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

let server: FakeServer;
before(async () => {
  server = await FakeServer.start();
});
after(async () => {
  await server.close();
});

async function cli(args: string[], stdin = ''): Promise<Run> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const chunks = { stdout: '', stderr: '' };
  stdout.on('data', (data: Buffer) => (chunks.stdout += data.toString()));
  stderr.on('data', (data: Buffer) => (chunks.stderr += data.toString()));
  const input = new PassThrough();
  input.end(stdin);
  const env = { KMB_CLUSTER: server.address };
  const code = await runCli(args, { stdout, stderr, stdin: input, env });
  return { code, ...chunks };
}

async function json(args: string[], stdin = ''): Promise<unknown> {
  const run = await cli([...args, '--json'], stdin);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stderr, '');
  return JSON.parse(run.stdout);
}

const isoPattern = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;
const hexPattern = /^[0-9a-f]{64}$/;

describe('tenant and stream commands', () => {
  it('creates and lists tenants with the JSON contract', async () => {
    const created = (await json(['tenant', 'create', '--name', 'acme'])) as Record<string, unknown>;
    assert.deepEqual(Object.keys(created), ['tenant_id', 'name', 'created_at']);
    assert.equal(created['name'], 'acme');
    assert.match(String(created['created_at']), isoPattern);
    const listed = (await json(['tenant', 'list'])) as Array<Record<string, unknown>>;
    const acme = listed.find((tenant) => tenant['name'] === 'acme');
    assert.deepEqual(acme, { ...created, sealed: false });
    const text = await cli(['tenant', 'list']);
    assert.match(text.stdout, /^ID\s+NAME\s+CREATED\s+SEALED\n/);
  });

  it('creates and lists streams, finding the tenant by name or id', async () => {
    const tenant = (await json(['tenant', 'create', '--name', 'clinic'])) as { tenant_id: number };
    const created = (await json([
      'stream',
      'create',
      '--tenant',
      'clinic',
      '--name',
      'vitals',
      '--data-class',
      'phi',
    ])) as Record<string, unknown>;
    assert.deepEqual(Object.keys(created), [
      'stream_id',
      'tenant_id',
      'name',
      'data_class',
      'created_at',
    ]);
    assert.deepEqual([created['tenant_id'], created['data_class']], [tenant.tenant_id, 'PHI']);
    const args = ['stream', 'list', '--tenant', String(tenant.tenant_id)];
    const listed = (await json(args)) as Array<Record<string, unknown>>;
    assert.equal(listed.length, 1);
    assert.deepEqual(listed[0], {
      ...created,
      next_offset: 0,
      chain_head: listed[0]?.['chain_head'],
    });
    assert.match(String(listed[0]?.['chain_head']), hexPattern);
    const publicStream = await json(['stream', 'create', '--tenant', 'clinic', '--name', 'open']);
    assert.equal((publicStream as Record<string, unknown>)['data_class'], 'Public');
  });

  it('appends --data values and reads them back as JSON lines', async () => {
    await json(['tenant', 'create', '--name', 'shop']);
    await json(['stream', 'create', '--tenant', 'shop', '--name', 'orders']);
    const target = ['--tenant', 'shop', '--stream', 'orders'];
    const big = '{"id":12345678901234567890}';
    const appended = await json(['stream', 'append', ...target, '--data', `[${big},[1,2],"s"]`]);
    assert.deepEqual(Object.keys(appended as object), ['first_offset', 'count', 'chain_head']);
    assert.deepEqual([(appended as { first_offset: number }).first_offset], [0]);
    assert.equal((appended as { count: number }).count, 3);
    const more = ['--data', '42', '--data', '"plain"', '--expected-offset', '3'];
    const second = (await json(['stream', 'append', ...target, ...more])) as { count: number };
    assert.equal(second.count, 2);

    const read = await cli(['stream', 'read', ...target, '--json']);
    assert.equal(read.code, 0, read.stderr);
    const lines = read.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 5);
    assert.ok(lines[0]?.includes(`"data":${big}`), 'large numbers are printed as stored');
    const events = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.deepEqual(Object.keys(events[0] ?? {}), ['offset', 'timestamp', 'data']);
    assert.deepEqual(
      events.map((event) => [event['offset'], event['data']]),
      [
        [0, JSON.parse(big)],
        [1, [1, 2]],
        [2, 's'],
        [3, 42],
        [4, 'plain'],
      ],
    );
    assert.match(String(events[0]?.['timestamp']), isoPattern);
    const page = await cli(['stream', 'read', ...target, '--from', '3', '--limit', '1']);
    assert.match(page.stdout, /^3 {2}\S+Z {2}42\n$/);
    const verify = await cli(['stream', 'verify', ...target]);
    assert.equal(verify.code, 0, verify.stderr);
  });

  it('appends NDJSON from stdin in bounded batches', async () => {
    await json(['tenant', 'create', '--name', 'bulk']);
    await json(['stream', 'create', '--tenant', 'bulk', '--name', 'log']);
    const eventCount = stdinBatchEventCountMax * 2 + 5;
    const lines = Array.from({ length: eventCount }, (_, i) => JSON.stringify({ i }));
    const stdin = `${lines.join('\n')}\n\n`;
    const appendsBefore = server.appliedCount;
    const args = ['stream', 'append', '--tenant', 'bulk', '--stream', 'log', '--data', '-'];
    const appended = (await json(args, stdin)) as Record<string, unknown>;
    assert.deepEqual([appended['first_offset'], appended['count']], [0, eventCount]);
    assert.match(String(appended['chain_head']), hexPattern);
    assert.equal(server.appliedCount - appendsBefore, 3, 'three batches, one append each');
    const listed = (await json(['stream', 'list', '--tenant', 'bulk'])) as Array<{
      next_offset: number;
      chain_head: string;
    }>;
    assert.deepEqual(
      [listed[0]?.next_offset, listed[0]?.chain_head],
      [eventCount, appended['chain_head']],
    );
  });

  it('records the actor, reason and correlation id with the command', async () => {
    const args = ['--actor', 'alice', '--reason', 'ticket 7', '--correlation-id', 'C-7'];
    await json([...args, 'tenant', 'create', '--name', 'audited']);
    const last = server.requests.at(-1);
    assert.ok(last !== undefined);
    const command = decodeCommand(last.body);
    assert.deepEqual(command.audit, { actor: 'alice', reason: 'ticket 7', correlationId: 'C-7' });
  });

  it('prints binary and non-JSON data safely', async () => {
    await json(['tenant', 'create', '--name', 'raw']);
    await json(['stream', 'create', '--tenant', 'raw', '--name', 'bytes']);
    const tenant = server.state.tenantIdsByName.get('raw');
    const streamId = server.state.streamIdsByTenant.get(tenant ?? (0 as never))?.get('bytes');
    assert.ok(streamId !== undefined);
    const { connect } = await import('../client/client.js');
    const db = await connect({ addresses: [server.address], actor: 'test' });
    const events = [new Uint8Array([0xff, 0x00]), 'not json'];
    await db.append({ tenantId: Number(tenant), streamId, events });
    await db.close();
    const read = await cli(['stream', 'read', '--tenant', 'raw', '--stream', 'bytes', '--json']);
    const [binary, text] = read.stdout
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.deepEqual(binary, {
      offset: 0,
      timestamp: binary?.['timestamp'],
      data: '/wA=',
      encoding: 'base64',
    });
    assert.equal(text?.['data'], 'not json');
  });
});

describe('errors', () => {
  it('reports failures with exit code 1 in text and JSON', async () => {
    await json(['tenant', 'create', '--name', 'twice']);
    const text = await cli(['tenant', 'create', '--name', 'twice']);
    assert.equal(text.code, 1);
    assert.match(text.stderr, /^error: KMB_ERR_TENANT_EXISTS: .+\n$/);
    assert.equal(text.stdout, '');
    const asJson = await cli(['tenant', 'create', '--name', 'twice', '--json']);
    assert.equal(asJson.code, 1);
    const parsed = JSON.parse(asJson.stderr) as { error: { code: string; message: string } };
    assert.equal(parsed.error.code, 'KMB_ERR_TENANT_EXISTS');
    const missing = await cli(['stream', 'list', '--tenant', 'no-such-tenant']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^error: KMB_ERR_TENANT_NOT_FOUND: /);
  });

  it('reports usage mistakes with exit code 2 without sending anything', async () => {
    const requestsBefore = server.requestCount + server.queryCount;
    const usages = [
      ['tenant', 'create'],
      ['tenant', 'frobnicate'],
      ['stream', 'create', '--tenant', '1', '--name', 's', '--data-class', 'Secret'],
      ['stream', 'read', '--tenant', '1', '--stream', '1', '--from', '-1'],
      ['stream', 'append', '--tenant', '1', '--stream', '1', '--data', '{oops'],
      ['stream', 'append', '--tenant', '1', '--stream', '1', '--data', '-', '--data', '1'],
      ['--cluster', 'not-an-address', 'tenant', 'list'],
    ];
    for (const args of usages) {
      const run = await cli(args);
      assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
      assert.match(run.stderr, /^error: KMB_ERR_INVALID_ARGUMENT: /, args.join(' '));
    }
    const asJson = await cli(['tenant', 'create', '--json']);
    assert.equal(asJson.code, 2);
    assert.equal(JSON.parse(asJson.stderr).error.code, 'KMB_ERR_INVALID_ARGUMENT');
    assert.equal(server.requestCount + server.queryCount, requestsBefore);
    const help = await cli(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Usage: kimberlite-cli/);
  });

  it('times out against an address where nothing listens', async () => {
    const closed = await FakeServer.start();
    const address = closed.address;
    await closed.close();
    const run = await cli(['--cluster', address, '--timeout-ms', '200', 'tenant', 'list']);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /^error: KMB_ERR_TIMEOUT: .*ECONNREFUSED/);
  });
});
