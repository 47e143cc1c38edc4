// Proves the small findings of issue 14 (item 7) against real processes: each piece of bad input
// gets its stable code and a message that names the problem, and nothing takes a server down.
//   - an oversized field (a 600 KB event, a 10 KB actor) is KMB_ERR_LIMIT_EXCEEDED naming the
//     limit and the size seen, from the server (a raw client, bypassing the SDK's checks), from
//     the SDK before it sends, and from the CLI (exit 2);
//   - bytes that are not UTF-8 in `--data` or on stdin are refused by the CLI (exit 2), never
//     stored as U+FFFD;
//   - tenant and stream names that are blank, path-like, all digits or hold invisible or
//     direction-changing characters are refused at admission with the message the SDK gives;
//   - a 50 MB config.toml is refused at once (exit 78) with a short message;
//   - a data directory that cannot be used is KMB_ERR_STORAGE_IO naming the path and why;
//   - `audit export` to a path it cannot write exits 1 with a clean error, no stack trace.
// Each test ran against the code before the fix and failed there (see the report of H6).

import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { KmbError, errorCodes } from '../src/client/client.js';
import type { Client } from '../src/client/client.js';
import { constants } from '../src/core/constants.js';
import { asStreamId, asTenantId } from '../src/core/types.js';
import type { Command } from '../src/kernel/kernel.js';
import { RawClient, newClientId } from '../src/testing/raw_client.js';
import { Harness, cleanEnv, cliBin, within } from './harness.js';
import type { ServerProcess } from './harness.js';

const KiB = 1024;
const audit = { actor: 'tester', reason: '', correlationId: null };

/** Sends one command on a fresh raw session; resolves with the error's code and message. */
async function rawError(server: ServerProcess, command: Command): Promise<[string, string]> {
  const raw = await RawClient.connect(server.address);
  try {
    const id = newClientId();
    const registered = await raw.request(id, 0, null);
    assert.equal(registered.kind, 'reply', JSON.stringify(registered));
    const answer = await raw.request(id, 1, command);
    assert.ok(answer.kind === 'error', `an error expected, got ${JSON.stringify(answer)}`);
    return [answer.error.code, answer.error.message];
  } finally {
    raw.close();
  }
}

/** The code and message of the KmbError a call rejects with. */
async function sdkError(work: () => Promise<unknown>): Promise<[string, string]> {
  try {
    await work();
  } catch (error) {
    assert.ok(error instanceof KmbError, `a KmbError, got ${String(error)}`);
    return [error.code, error.message];
  }
  assert.fail('the call was expected to fail');
}

/** Runs the CLI with raw bytes in its arguments or stdin (the harness passes strings only). */
function runCliBytes(
  shellArgs: string,
  stdin: Uint8Array,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  // printf in the shell turns \NNN escapes into raw bytes, which no JS string can carry.
  const child = spawn('/bin/sh', ['-c', `exec "$0" "$1" ${shellArgs}`, process.execPath, cliBin], {
    env: cleanEnv(),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (data: Buffer) => (stdout += data.toString('utf8')));
  child.stderr.on('data', (data: Buffer) => (stderr += data.toString('utf8')));
  child.stdin.end(stdin);
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  return within(
    exited.then((code) => ({ code, stdout, stderr })),
    20_000,
    'the CLI to exit',
  );
}

async function setup(h: Harness): Promise<{ server: ServerProcess; db: Client; dataDir: string }> {
  const dataDir = await h.tempDir();
  const server = await h.startServer({ dataDir });
  const db = await h.connect({ addresses: [server.address], requestTimeoutMs: 10_000 });
  return { server, db, dataDir };
}

test('oversized fields are KMB_ERR_LIMIT_EXCEEDED naming the limit, from server, SDK and CLI', async (t) => {
  const h = new Harness(t);
  const { server, db } = await setup(h);
  const tenant = await db.createTenant('limits');
  const stream = await db.createStream({ tenantId: tenant.tenantId, name: 'events' });
  const ids = { tenantId: asTenantId(tenant.tenantId), streamId: asStreamId(stream.streamId) };

  const bigEvent = new Uint8Array(600 * KiB).fill(0x61);
  const append: Command = {
    kind: 'append',
    ...ids,
    expectedOffset: null,
    events: [bigEvent],
    audit,
  };
  const [code, message] = await rawError(server, append);
  assert.equal(code, errorCodes.limit_exceeded, message);
  assert.match(message, new RegExp(`${600 * KiB}.*${constants.eventSizeBytesMax}`));
  const fromSdk = await sdkError(() => db.append({ ...ids, events: [bigEvent] }));
  assert.deepEqual(fromSdk, [code, message], 'the SDK refuses it the same way before sending');

  const bigActor = 'a'.repeat(10 * KiB);
  const create: Command = {
    kind: 'create_tenant',
    name: 'x',
    audit: { ...audit, actor: bigActor },
  };
  const [actorCode, actorMessage] = await rawError(server, create);
  assert.equal(actorCode, errorCodes.limit_exceeded, actorMessage);
  assert.match(actorMessage, new RegExp(`actor.*${10 * KiB}.*${constants.actorBytesMax}`));
  const sdkActor = await sdkError(() =>
    h.connect({ addresses: [server.address], actor: bigActor }),
  );
  assert.deepEqual(sdkActor, [actorCode, actorMessage]);

  const cli = await h.runCli([
    '--cluster',
    server.address,
    '--actor',
    bigActor,
    'tenant',
    'create',
    '--name',
    'cli-actor',
  ]);
  assert.equal(cli.code, 2, cli.stderr);
  assert.equal(cli.stderr, `error: ${actorCode}: ${actorMessage}\n`);
  // An argument cannot carry 600 KB (Linux caps one at 128 KiB): the event comes on stdin.
  const cliEvent = await h.runCli(
    [
      ...['--cluster', server.address, 'stream', 'append'],
      ...['--tenant', 'limits'],
      '--stream',
      'events',
      '--data',
      '-',
    ],
    { stdin: `${JSON.stringify('a'.repeat(600 * KiB))}\n` },
  );
  assert.equal(cliEvent.code, 2, cliEvent.stderr);
  const over = `${600 * KiB + 2} bytes, over the limit of ${constants.eventSizeBytesMax} bytes`;
  assert.equal(cliEvent.stderr, `error: ${errorCodes.limit_exceeded}: stdin line 1 is ${over}\n`);

  assert.equal((await db.read(ids)).events.length, 0, 'nothing was appended');
  assert.ok(server.running);
});

test('the CLI refuses input that is not UTF-8 instead of storing U+FFFD', async (t) => {
  const h = new Harness(t);
  const { server, db } = await setup(h);
  const tenant = await db.createTenant('utf8');
  const stream = await db.createStream({ tenantId: tenant.tenantId, name: 'events' });
  const where = `--cluster ${server.address} stream append --tenant utf8 --stream events`;

  // --data '"ok\377"': a JSON string holding the byte 0xFF.
  const fromArgs = await runCliBytes(`${where} --data "$(printf '"ok\\377"')"`, new Uint8Array());
  assert.equal(fromArgs.code, 2, fromArgs.stderr);
  assert.match(fromArgs.stderr, /^error: KMB_ERR_INVALID_ARGUMENT: --data .*UTF-8.*byte 3/);

  const lines = Buffer.concat([
    Buffer.from('{"n":1}\n{"n":"'),
    Buffer.of(0xc3, 0x28),
    Buffer.from('"}\n'),
  ]);
  const fromStdin = await runCliBytes(`${where} --data -`, lines);
  assert.equal(fromStdin.code, 2, fromStdin.stderr);
  assert.match(fromStdin.stderr, /^error: KMB_ERR_INVALID_ARGUMENT: stdin line 2 .*UTF-8.*byte 6/);

  const events = (await db.read({ tenantId: tenant.tenantId, streamId: stream.streamId })).events;
  for (const event of events) {
    assert.ok(!Buffer.from(event.data).toString('utf8').includes('\uFFFD'), 'no U+FFFD stored');
  }
  assert.equal(events.length, 0, 'a batch with a bad line is not sent');
});

test('names that are blank, path-like, all digits or hold invisible characters are refused', async (t) => {
  const h = new Harness(t);
  const { server, db } = await setup(h);
  const good = await db.createTenant('names');
  const badNames = [
    '   ',
    ' padded',
    'padded ',
    '../../etc/passwd',
    'a\\b',
    '..',
    'abc\u202Etxt.exe',
    '\uFEFFbom',
    'zero\u200Bwidth',
    '1',
    '0042',
  ];
  for (const name of badNames) {
    const what = JSON.stringify(name);
    const create: Command = { kind: 'create_tenant', name, audit };
    const [code, message] = await rawError(server, create);
    assert.equal(code, errorCodes.invalid_argument, `${what}: ${message}`);
    assert.deepEqual(await sdkError(() => db.createTenant(name)), [code, message], what);
    const tenantId = asTenantId(good.tenantId);
    const stream: Command = { kind: 'create_stream', tenantId, name, dataClass: 'Public', audit };
    const [streamCode, streamMessage] = await rawError(server, stream);
    assert.equal(streamCode, errorCodes.invalid_argument, `${what}: ${streamMessage}`);
    const sdkStream = await sdkError(() => db.createStream({ tenantId, name }));
    assert.deepEqual(sdkStream, [streamCode, streamMessage], what);
  }
  const cli = await h.runCli(['--cluster', server.address, 'tenant', 'create', '--name', '   ']);
  assert.equal(cli.code, 2, cli.stderr);
  assert.match(cli.stderr, /^error: KMB_ERR_INVALID_ARGUMENT: tenant name/);
  assert.deepEqual(
    (await db.listTenants()).map((tenant) => tenant.name),
    ['names'],
  );
  assert.deepEqual(await db.listStreams(good.tenantId), []);
  // Names people use keep working.
  await db.createTenant('Clinic Nord-Ost 2');
  await db.createStream({ tenantId: good.tenantId, name: 'vitals.v2_ü' });
});

test('a 50 MB config file is refused at once with a short message', async (t) => {
  const h = new Harness(t);
  const dir = await h.tempDir();
  const file = join(dir, 'config.toml');
  await writeFile(file, `[server]\n${'k'.repeat(50 * 1024 * KiB)} = 1\n`);
  const result = await h.runServerToExit({ dataDir: dir, args: ['--config', file] });
  assert.equal(result.code, 78, result.stderr.slice(0, 2000));
  assert.ok(result.stderr.length < 2 * KiB, `a short message, got ${result.stderr.length} chars`);
  assert.match(result.stderr, /KMB_ERR_CONFIG_INVALID.*config.*larger than/);
});

test('an unusable data directory is KMB_ERR_STORAGE_IO naming the path and why', async (t) => {
  const h = new Harness(t);
  const dir = await h.tempDir();
  const file = join(dir, 'a-file');
  await writeFile(file, 'not a directory');
  for (const dataDir of [file, join(file, 'below')]) {
    const result = await h.runServerToExit({ dataDir });
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, /^error: KMB_ERR_STORAGE_IO: /m, result.stderr);
    assert.ok(result.stderr.includes(file), result.stderr);
    assert.match(result.stderr, /not a directory/, result.stderr);
  }
});

test('audit export to a path it cannot write exits 1 with a clean error', async (t) => {
  const h = new Harness(t);
  const { server, db, dataDir } = await setup(h);
  await db.createTenant('audited');
  await db.close();
  await server.stop();
  const outputDir = await h.tempDir();
  await mkdir(join(outputDir, 'a-directory'));
  const targets = [join(outputDir, 'missing', 'export.json'), join(outputDir, 'a-directory')];
  for (const output of targets) {
    const result = await h.runAdmin([
      ...['audit', 'export', '--data-dir', dataDir, '--start', '2000-01-01'],
      ...['--end', '2100-01-01', '--output', output],
    ]);
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, /^error: KMB_ERR_STORAGE_IO: .*export/, result.stderr);
    assert.ok(result.stderr.includes(output), result.stderr);
    assert.ok(!/\n\s+at /.test(result.stderr), `no stack trace: ${result.stderr}`);
  }
  assert.deepEqual(await readdir(outputDir), ['a-directory'], 'no temporary file is left');
});
