// Bad input, from the network and from the operator, is answered with a stable error code and
// never takes the server down: broken frames get a connection-scoped `error` and a closed
// connection, requests naming things that do not exist or conflict get their kernel code, and
// invalid configuration stops the server before it starts, with exit code 78 naming the key.

import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { KmbError, errorCodes } from '../src/client/client.js';
import type { Client, ErrorCode } from '../src/client/client.js';
import { constants } from '../src/core/constants.js';
import { FrameDecoder, encodeFrame, frameHeaderSizeBytes, frameMagic } from '../src/net/frame.js';
import { decodeMessage, encodeMessage, messageKind } from '../src/net/client_protocol.js';
import type { ClientMessage } from '../src/net/client_protocol.js';
import { Harness, within } from './harness.js';
import type { ServerProcess } from './harness.js';

/** Sends raw bytes on a fresh connection; collects the messages until the server closes it. */
async function sendRaw(server: ServerProcess, bytes: Uint8Array): Promise<ClientMessage[]> {
  const [host = '', port = ''] = server.address.split(':');
  const socket = createConnection({ host, port: Number(port) });
  const decoder = new FrameDecoder();
  const messages: ClientMessage[] = [];
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  socket.on('error', () => undefined);
  socket.on('data', (data: Buffer) => {
    const { frames } = decoder.push(data);
    for (const frame of frames) messages.push(decodeMessage(frame.kind, frame.body));
  });
  socket.write(bytes);
  await within(closed, 10_000, 'the server to close a connection that sent bad bytes');
  return messages;
}

function hello(): Uint8Array {
  const body = encodeMessage({ kind: 'hello', hello: { protocolVersion: 1, clusterName: '' } });
  return encodeFrame(messageKind.hello, body);
}

function assertConnectionError(messages: readonly ClientMessage[], code: ErrorCode): void {
  const errors = messages.filter((message) => message.kind === 'error');
  assert.equal(errors.length, 1, `one error message expected: ${JSON.stringify(messages)}`);
  const [error] = errors;
  assert.ok(error?.kind === 'error');
  assert.equal(error.error.scope.kind, 'connection');
  assert.equal(error.error.code, code, error.error.message);
}

async function assertServes(h: Harness, server: ServerProcess, name: string): Promise<void> {
  assert.ok(server.running, `the server is still running\n${server.describe()}`);
  const db = await h.connect({ addresses: [server.address], requestTimeoutMs: 10_000 });
  const tenant = await db.createTenant(name);
  assert.ok((await db.listTenants()).some((t) => t.tenantId === tenant.tenantId));
  await db.close();
}

async function rejectsWith(work: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(work, (error: unknown) => {
    assert.ok(error instanceof KmbError, `a KmbError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return true;
  });
}

test('broken frames get a connection-scoped error code; the server keeps serving', async (t) => {
  // Proves the wire's input validation (HOUSE_RULES §6): random bytes, a header claiming more
  // than 8 MiB, a frame with a wrong checksum, a valid frame with an undecodable body and a
  // query before hello are each answered with one `error` of scope connection carrying
  // KMB_ERR_FRAME_MALFORMED / _TOO_LARGE / _CHECKSUM, then the connection is closed; after each,
  // the same server process serves a fresh SDK client.
  const h = new Harness(t);
  const server = await h.startServer({ dataDir: await h.tempDir() });

  const garbage = randomBytes(64);
  garbage.writeUInt32LE((frameMagic ^ 0xffffffff) >>> 0, 0);
  assertConnectionError(await sendRaw(server, garbage), errorCodes.frame_malformed);
  await assertServes(h, server, 'after-garbage');

  const oversized = Buffer.alloc(frameHeaderSizeBytes);
  oversized.writeUInt32LE(frameMagic, 0);
  oversized.writeUInt32LE(constants.frameSizeBytesMax + 1, 4);
  oversized.writeUInt8(messageKind.hello, 12);
  assertConnectionError(await sendRaw(server, oversized), errorCodes.frame_too_large);
  await assertServes(h, server, 'after-oversized');

  const badChecksum = Buffer.from(hello());
  badChecksum.writeUInt32LE((badChecksum.readUInt32LE(8) ^ 0x1) >>> 0, 8);
  assertConnectionError(await sendRaw(server, badChecksum), errorCodes.frame_checksum);
  await assertServes(h, server, 'after-checksum');

  const badBody = encodeFrame(messageKind.hello, Buffer.from([0xff]));
  assertConnectionError(await sendRaw(server, badBody), errorCodes.frame_malformed);
  const query = encodeMessage({
    kind: 'query',
    query: { queryId: 1, query: { kind: 'list_tenants' } },
  });
  assertConnectionError(
    await sendRaw(server, encodeFrame(messageKind.query, query)),
    errorCodes.frame_malformed,
  );
  await assertServes(h, server, 'after-malformed');
});

test('requests that name missing or conflicting things get their stable codes', async (t) => {
  // Proves the kernel's answers reach the SDK with their codes: unknown tenant and stream on
  // create, list, append and read; a wrong expected offset; duplicate tenant and stream names.
  // None of the failed writes changed anything, and the same client goes on working.
  const h = new Harness(t);
  const server = await h.startServer({ dataDir: await h.tempDir() });
  const db: Client = await h.connect({ addresses: [server.address], requestTimeoutMs: 10_000 });
  const tenant = await db.createTenant('present');
  const stream = await db.createStream({ tenantId: tenant.tenantId, name: 'present' });
  const target = { tenantId: tenant.tenantId, streamId: stream.streamId };
  const missingTenant = tenant.tenantId + 1000;
  const missingStream = stream.streamId + 1000;

  const notFoundTenant = errorCodes.tenant_not_found;
  await rejectsWith(db.createStream({ tenantId: missingTenant, name: 's' }), notFoundTenant);
  await rejectsWith(db.listStreams(missingTenant), notFoundTenant);
  await rejectsWith(
    db.append({ tenantId: missingTenant, streamId: 1, events: ['x'] }),
    notFoundTenant,
  );
  const missing = { tenantId: tenant.tenantId, streamId: missingStream };
  await rejectsWith(db.append({ ...missing, events: ['x'] }), errorCodes.stream_not_found);
  await rejectsWith(db.read(missing), errorCodes.stream_not_found);

  await db.append({ ...target, events: ['first'] });
  await rejectsWith(
    db.append({ ...target, events: ['stale'], expectedOffset: 0 }),
    errorCodes.offset_mismatch,
  );
  await rejectsWith(
    db.append({ ...target, events: ['ahead'], expectedOffset: 5 }),
    errorCodes.offset_mismatch,
  );
  await db.append({ ...target, events: ['second'], expectedOffset: 1 });

  await rejectsWith(db.createTenant('present'), errorCodes.tenant_exists);
  await rejectsWith(
    db.createStream({ tenantId: tenant.tenantId, name: 'present' }),
    errorCodes.stream_exists,
  );
  const other = await db.createTenant('other');
  await db.createStream({ tenantId: other.tenantId, name: 'present' });

  const read = await db.read(target);
  assert.deepEqual(
    read.events.map((event) => Buffer.from(event.data).toString('utf8')),
    ['first', 'second'],
  );
  assert.deepEqual(
    (await db.listTenants()).map((t) => t.name),
    ['present', 'other'],
  );
  assert.ok(server.running);
});

test('invalid configuration refuses to start with exit code 78 and names the key', async (t) => {
  // Proves config validation at the edge (DESIGN §6): a non-numeric --node-id, a zero
  // KMB_CONSENSUS_HEARTBEAT_MS and an unknown key in a config.toml each stop the server before it
  // serves, with exit code 78 and a message on stderr naming the offending key.
  const h = new Harness(t);
  const dir = await h.tempDir();
  const cases: Array<{
    what: string;
    run: () => ReturnType<Harness['runServerToExit']>;
    key: RegExp;
  }> = [
    {
      what: '--node-id abc',
      run: () => h.runServerToExit({ dataDir: dir, args: ['--node-id', 'abc'] }),
      key: /node[_-]id/,
    },
    {
      what: 'KMB_CONSENSUS_HEARTBEAT_MS=0',
      run: () => h.runServerToExit({ dataDir: dir, env: { KMB_CONSENSUS_HEARTBEAT_MS: '0' } }),
      key: /heartbeat_ms|KMB_CONSENSUS_HEARTBEAT_MS/,
    },
    {
      what: 'unknown key in config.toml',
      run: async () => {
        const file = join(dir, 'config.toml');
        await writeFile(file, '[server]\nmax_connections = 10\nfrobnicate_level = 3\n');
        return h.runServerToExit({ dataDir: dir, args: ['--config', file] });
      },
      key: /frobnicate_level/,
    },
  ];
  for (const { what, run, key } of cases) {
    const result = await run();
    const detail = `${what}: ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`;
    assert.equal(result.code, 78, detail);
    assert.match(result.stderr, key, detail);
    assert.ok(!result.stdout.includes('Node ready'), detail);
  }
});
