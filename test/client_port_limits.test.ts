// The client port's hygiene after hello (issue 14, finding 3), against a real kimberlite-server
// process with small limits set through the environment: idle connections and one-byte-a-while
// senders are closed by their timeouts (and an SDK client whose idle connection was closed
// carries on), a client past the connection limit gets an error frame instead of a reset, many
// large incomplete frames stay within the frame buffer budget while a normal client is served,
// and one connection cannot register enough sessions to evict another client's session.

import { strict as assert } from 'node:assert';
import { createConnection } from 'node:net';
import type { Socket } from 'node:net';
import { test } from 'node:test';
import { errorCodes } from '../src/client/client.js';
import type { Client, ErrorCode, StreamId, TenantId } from '../src/client/client.js';
import { asClientId, asRequestNumber } from '../src/core/types.js';
import { FrameDecoder, encodeFrame, frameHeaderSizeBytes, frameMagic } from '../src/net/frame.js';
import {
  decodeMessage,
  encodeMessage,
  encodeMessageFrame,
  messageKind,
} from '../src/net/client_protocol.js';
import type { ClientMessage } from '../src/net/client_protocol.js';
import { Harness, fetchOps, parseMetrics, sampleValue, sleep, within } from './harness.js';
import type { ServerProcess } from './harness.js';

/** A raw client socket that records every message the server sends and how the socket ended. */
class RawClient {
  readonly messages: ClientMessage[] = [];
  readonly closed: Promise<void>;
  /** The socket error, if the connection ended with one (ECONNRESET, EPIPE). */
  error: Error | null = null;
  private readonly decoder = new FrameDecoder();

  private constructor(readonly socket: Socket) {
    this.closed = new Promise((resolve) => socket.on('close', () => resolve()));
    socket.on('error', (error) => {
      this.error = error;
    });
    socket.on('data', (data: Buffer) => {
      for (const frame of this.decoder.push(data).frames) {
        this.messages.push(decodeMessage(frame.kind, frame.body));
      }
    });
  }

  static async open(server: ServerProcess): Promise<RawClient> {
    const [host = '', port = ''] = server.address.split(':');
    const socket = createConnection({ host, port: Number(port) });
    socket.setNoDelay(true);
    const client = new RawClient(socket);
    await within(
      new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
      }),
      10_000,
      'a TCP connection',
    );
    return client;
  }

  send(bytes: Uint8Array): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  /** Sends hello and waits for hello_ok. */
  async hello(): Promise<void> {
    this.send(
      encodeMessageFrame({ kind: 'hello', hello: { protocolVersion: 1, clusterName: '' } }),
    );
    await this.waitFor((m) => m.kind === 'hello_ok' || m.kind === 'error', 'hello_ok');
    assert.equal(this.messages[0]?.kind, 'hello_ok', JSON.stringify(this.messages[0]));
  }

  async waitFor(match: (message: ClientMessage) => boolean, what: string): Promise<void> {
    await within(
      (async () => {
        while (!this.messages.some(match)) await sleep(20);
      })(),
      15_000,
      what,
    );
  }

  /** The one connection-scoped error the server sent before closing. */
  connectionError(): { code: ErrorCode; message: string } {
    const errors = this.messages.flatMap((m) =>
      m.kind === 'error' && m.error.scope.kind === 'connection' ? [m.error] : [],
    );
    assert.equal(errors.length, 1, `one connection error: ${JSON.stringify(this.messages)}`);
    const [error] = errors;
    assert.ok(error !== undefined);
    return error;
  }
}

async function metrics(server: ServerProcess): Promise<ReturnType<typeof parseMetrics>> {
  return parseMetrics((await fetchOps(server, '/metrics')).text);
}

async function metric(
  server: ServerProcess,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const value = sampleValue(await metrics(server), name, labels);
  assert.ok(value !== undefined, `${name} ${JSON.stringify(labels)} is exported`);
  return value;
}

function assertClosedWith(client: RawClient, code: ErrorCode, key: string): void {
  const error = client.connectionError();
  assert.equal(error.code, code, error.message);
  assert.match(error.message, new RegExp(key), 'the message names the setting');
  assert.equal(client.error, null, `no socket error (reset): ${String(client.error)}`);
}

test('idle and slow connections are closed by their timeouts; the SDK reconnects', async (t) => {
  // Proves the idle timeout (a connection that says hello and then nothing is closed with a
  // connection-scoped KMB_ERR_TIMEOUT naming [server] idle_timeout_ms) and the frame timeout (a
  // connection that keeps sending one byte at a time of a frame it never finishes is closed
  // with KMB_ERR_TIMEOUT naming [server] frame_timeout_ms, although it is never idle for long),
  // both counted by reason in kmb_client_connections_closed_total; and that an SDK client
  // whose connection the idle timeout closed makes its next call without error.
  const h = new Harness(t);
  const server = await h.startServer({
    dataDir: await h.tempDir(),
    env: { KMB_SERVER_IDLE_TIMEOUT_MS: '2500', KMB_SERVER_FRAME_TIMEOUT_MS: '1000' },
  });
  const db = await h.connect({ addresses: [server.address], requestTimeoutMs: 15_000 });
  await db.createTenant('before-idle');
  const idle = await RawClient.open(server);
  await idle.hello();
  const slow = await RawClient.open(server);
  await slow.hello();
  const frame = encodeFrame(messageKind.query, new Uint8Array(64));
  let sent = 0;
  const dripper = setInterval(() => slow.send(frame.subarray(sent, ++sent)), 200);
  t.after(() => clearInterval(dripper));

  await within(slow.closed, 15_000, 'the frame timeout to close the slow sender');
  clearInterval(dripper);
  assert.ok(sent < frame.length, 'the slow frame was never complete');
  assertClosedWith(slow, errorCodes.timeout, 'frame_timeout_ms');
  await within(idle.closed, 15_000, 'the idle timeout to close the idle connection');
  assertClosedWith(idle, errorCodes.timeout, 'idle_timeout_ms');

  const closed = { name: 'kmb_client_connections_closed_total' };
  assert.ok((await metric(server, closed.name, { reason: 'frame_timeout' })) >= 1);
  // The SDK's connection was as idle as the raw one: wait until it too was closed.
  await within(
    (async () => {
      while ((await metric(server, closed.name, { reason: 'idle_timeout' })) < 2) await sleep(100);
    })(),
    15_000,
    'the SDK client connection to be closed as idle',
  );
  await server.waitForLine((line) => line.message === 'Closed idle client connection');
  await server.waitForLine((line) => line.message === 'Client frame timed out');
  await db.createTenant('after-idle');
  assert.equal((await db.listTenants()).length, 2);
});

test('past the connection limit a client gets an error frame, and idle closes free slots', async (t) => {
  // Proves accept-then-answer: with [server] max_connections = 3 and three clients connected,
  // a fourth that says hello receives one connection-scoped KMB_ERR_BACKPRESSURE naming
  // max_connections and a clean close (no ECONNRESET); the refusal is logged ("Client
  // connection refused") and counted in kmb_client_connections_rejected_total; once the idle
  // timeout has closed the three, a new SDK client is served.
  const h = new Harness(t);
  const server = await h.startServer({
    dataDir: await h.tempDir(),
    env: { KMB_SERVER_MAX_CONNECTIONS: '3', KMB_SERVER_IDLE_TIMEOUT_MS: '3000' },
  });
  const held: RawClient[] = [];
  for (let i = 0; i < 3; i++) {
    const client = await RawClient.open(server);
    await client.hello();
    held.push(client);
  }
  const refused = await RawClient.open(server);
  refused.send(
    encodeMessageFrame({ kind: 'hello', hello: { protocolVersion: 1, clusterName: '' } }),
  );
  await within(refused.closed, 10_000, 'the refused connection to be closed');
  assertClosedWith(refused, errorCodes.backpressure, 'max_connections');
  const line = await server.waitForLine((l) => l.message === 'Client connection refused');
  assert.equal(line.fields['reason'], 'connection_limit');
  const rejected = 'kmb_client_connections_rejected_total';
  assert.equal(await metric(server, rejected, { reason: 'connection_limit' }), 1);

  await within(Promise.all(held.map((c) => c.closed)), 15_000, 'idle closes of the three');
  const db = await h.connect({ addresses: [server.address], requestTimeoutMs: 10_000 });
  await db.createTenant('after-slots-freed');
});

/** A frame header that announces `sizeBytes` bytes of a query frame (never finished here). */
function bigFrameHeader(sizeBytes: number): Uint8Array {
  const header = Buffer.alloc(frameHeaderSizeBytes);
  header.writeUInt32LE(frameMagic, 0);
  header.writeUInt32LE(sizeBytes, 4);
  header.writeUInt8(messageKind.query, 12);
  return header;
}

test('many large incomplete frames stay within the frame buffer budget', async (t) => {
  // Proves the global budget of incomplete-frame bytes: six connections each start an 8 MiB
  // frame and send 3 MiB of it (18 MiB in all) against a budget of 8 MiB. The connections
  // holding the most are closed with KMB_ERR_BACKPRESSURE naming frame_buffer_budget_bytes;
  // kmb_client_frame_buffer_bytes, read over and over meanwhile, never exceeds the budget; and
  // a normal SDK client is served while the survivors still hold their partial frames.
  const h = new Harness(t);
  const budgetBytes = 8 * 1024 * 1024;
  const server = await h.startServer({
    dataDir: await h.tempDir(),
    env: {
      KMB_SERVER_FRAME_BUFFER_BUDGET_BYTES: String(budgetBytes),
      KMB_SERVER_FRAME_TIMEOUT_MS: '60000',
    },
  });
  const db = await h.connect({ addresses: [server.address], requestTimeoutMs: 15_000 });
  const hogs: RawClient[] = [];
  for (let i = 0; i < 6; i++) {
    const hog = await RawClient.open(server);
    await hog.hello();
    hogs.push(hog);
  }
  let highestBytes = 0;
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      const value = await metric(server, 'kmb_client_frame_buffer_bytes');
      highestBytes = Math.max(highestBytes, value);
      await sleep(10);
    }
  })();
  const chunk = Buffer.alloc(64 * 1024, 7);
  for (const hog of hogs) hog.send(bigFrameHeader(8 * 1024 * 1024));
  for (let sentBytes = 0; sentBytes < 3 * 1024 * 1024; sentBytes += chunk.length) {
    for (const hog of hogs) hog.send(chunk);
    await sleep(1);
  }
  const evictedCount = (): number =>
    hogs.filter((hog) => hog.messages.some((m) => m.kind === 'error')).length;
  await within(
    (async () => {
      while (evictedCount() < 3) await sleep(20);
    })(),
    15_000,
    'the budget to close the connections holding the most',
  );
  await db.createTenant('served-meanwhile');
  watching = false;
  await watcher;
  assert.ok(highestBytes > 0, 'the budget was in use');
  assert.ok(highestBytes <= budgetBytes, `buffered ${highestBytes} > budget ${budgetBytes}`);
  const evicted = hogs.find((hog) => hog.messages.some((m) => m.kind === 'error'));
  assert.ok(evicted !== undefined);
  await within(evicted.closed, 10_000, 'an evicted connection to close');
  const error = evicted.connectionError();
  assert.equal(error.code, errorCodes.backpressure, error.message);
  assert.match(error.message, /frame_buffer_budget_bytes/);
  const closed = 'kmb_client_connections_closed_total';
  assert.ok((await metric(server, closed, { reason: 'frame_buffer_budget' })) >= 3);
  assert.ok(
    hogs.some((hog) => !hog.socket.destroyed && hog.messages.length === 1),
    'survivor',
  );
});

/** A register request for a fresh client id n (32 hex digits). */
function register(n: number): Uint8Array {
  const clientId = asClientId(n.toString(16).padStart(32, 'a'));
  const request = {
    clientId,
    requestNumber: asRequestNumber(0),
    operation: 'register' as const,
    body: new Uint8Array(0),
  };
  return encodeFrame(messageKind.request, encodeMessage({ kind: 'request', request }));
}

async function appendOne(db: Client, tenantId: TenantId, streamId: StreamId): Promise<void> {
  await db.append({ tenantId, streamId, events: ['{"n":1}'] }, { reason: 'test' });
}

test('one connection cannot register enough sessions to evict another client', async (t) => {
  // Proves the per-connection session limit: with a client table of 16 sessions and
  // [server] sessions_per_connection_max = 6, a connection that registers 20 sessions gets 6
  // replies and 14 KMB_ERR_LIMIT_EXCEEDED naming the setting (logged, counted in
  // kmb_client_sessions_refused_total), and another client's session survives: its append
  // afterwards succeeds. (Before the limit, the 20 registrations evicted it.)
  const h = new Harness(t);
  const server = await h.startServer({
    dataDir: await h.tempDir(),
    env: {
      KMB_CONSENSUS_CLIENT_SESSIONS_MAX: '16',
      KMB_SERVER_SESSIONS_PER_CONNECTION_MAX: '6',
    },
  });
  const victim = await h.connect({ addresses: [server.address], requestTimeoutMs: 15_000 });
  const { tenantId } = await victim.createTenant('victim');
  const { streamId } = await victim.createStream({ tenantId, name: 'events' });
  await appendOne(victim, tenantId, streamId);

  const attacker = await RawClient.open(server);
  await attacker.hello();
  for (let n = 0; n < 20; n++) attacker.send(register(n));
  const answered = (m: ClientMessage): boolean => m.kind === 'reply' || m.kind === 'error';
  await within(
    (async () => {
      while (attacker.messages.filter(answered).length < 20) await sleep(20);
    })(),
    15_000,
    'answers to 20 registrations',
  );
  const replies = attacker.messages.filter((m) => m.kind === 'reply');
  const refusals = attacker.messages.flatMap((m) => (m.kind === 'error' ? [m.error] : []));
  assert.equal(replies.length, 6, JSON.stringify(refusals.slice(0, 2)));
  assert.equal(refusals.length, 14);
  for (const refusal of refusals) {
    assert.equal(refusal.code, errorCodes.limit_exceeded, refusal.message);
    assert.match(refusal.message, /sessions_per_connection_max/);
  }
  const refused = 'kmb_client_sessions_refused_total';
  assert.equal(await metric(server, refused, { reason: 'sessions_per_connection' }), 14);
  await server.waitForLine((line) => line.message === 'Session registration refused');
  await appendOne(victim, tenantId, streamId);
});
