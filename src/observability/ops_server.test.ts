// Proves, against a real server on port 0, that each ops route answers with the status code
// and body documented in ops_server.ts: 200/503 for the health checks (rstmdb's /health
// included) as the provider says,
// /status and /metrics from the provider, 404 and 405 as JSON errors, 500 (logged) when the
// provider throws while the server keeps serving, HEAD without a body, and a clean close. Then
// the hardening (ops_connections.ts, ops_access.ts): idle sockets shed at a small cap, refusal
// with 503 when every connection is busy, prompt header timeouts, the debug_endpoints modes
// and the checks on the limits themselves.

import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { setTimeout as sleepMs } from 'node:timers/promises';
import { Registry } from 'prom-client';
import { errorCodes } from '../core/errors.js';
import { createLogger } from './logger.js';
import { isLoopbackAddress } from './ops_access.js';
import { opsConnectionDefaults } from './ops_connections.js';
import { createOpsInstruments, type OpsInstruments } from './ops_metrics.js';
import {
  startOpsServer,
  type OpsProvider,
  type OpsServer,
  type OpsServerOptions,
} from './ops_server.js';

const state = { live: true, ready: true, reason: 'normal', failStatus: false };
const logLines: string[] = [];

const provider: OpsProvider = {
  live: () => state.live,
  ready: () => ({ ready: state.ready, reason: state.reason }),
  status: () => {
    if (state.failStatus) throw new Error('status exploded');
    return { node_id: 1, status: 'normal', view: 5, is_leader: true };
  },
  metrics: () =>
    Promise.resolve({ contentType: 'text/plain; version=0.0.4; charset=utf-8', body: 'a 1\n' }),
};

let server: OpsServer;
let base: string;

before(async () => {
  const logger = createLogger({
    env: {},
    module: 'kimberlite_ops',
    destination: { write: (line: string) => logLines.push(line) },
  });
  server = await startOpsServer({ host: '127.0.0.1', port: 0, provider, logger });
  assert.ok(server.address.port > 0);
  base = `http://127.0.0.1:${server.address.port}`;
});

after(async () => {
  await server.close();
});

async function get(path: string, init: RequestInit = {}) {
  const response = await fetch(`${base}${path}`, init);
  const text = await response.text();
  return { status: response.status, headers: response.headers, text };
}

test('/health/live answers 200 live, then 503 shutting_down', async () => {
  assert.deepEqual(await get('/health/live').then((r) => [r.status, JSON.parse(r.text)]), [
    200,
    { status: 'live' },
  ]);
  state.live = false;
  const down = await get('/health/live');
  state.live = true;
  assert.equal(down.status, 503);
  assert.deepEqual(JSON.parse(down.text), { status: 'shutting_down' });
});

test('/health (rstmdb) answers 200 while the process serves, 503 once it shuts down', async () => {
  Object.assign(state, { ready: false, reason: 'view_change' });
  const up = await get('/health');
  state.live = false;
  const down = await get('/health');
  Object.assign(state, { live: true, ready: true, reason: 'normal' });
  assert.equal(up.status, 200);
  assert.deepEqual(JSON.parse(up.text), { status: 'ok', ready: false, reason: 'view_change' });
  assert.equal(down.status, 503);
  assert.equal(JSON.parse(down.text).status, 'shutting_down');
});

test('/health/ready answers 200 or 503 with the reason', async () => {
  const ready = await get('/health/ready?probe=k8s');
  assert.equal(ready.status, 200);
  assert.deepEqual(JSON.parse(ready.text), { status: 'ready', reason: 'normal' });
  Object.assign(state, { ready: false, reason: 'view_change' });
  const notReady = await get('/health/ready');
  Object.assign(state, { ready: true, reason: 'normal' });
  assert.equal(notReady.status, 503);
  assert.deepEqual(JSON.parse(notReady.text), { status: 'not_ready', reason: 'view_change' });
});

test('/status answers the provider status as JSON', async () => {
  const status = await get('/status');
  assert.equal(status.status, 200);
  assert.match(status.headers.get('content-type') ?? '', /^application\/json/);
  assert.deepEqual(JSON.parse(status.text), {
    node_id: 1,
    status: 'normal',
    view: 5,
    is_leader: true,
  });
});

test('/metrics answers the exposition with its content type', async () => {
  const metrics = await get('/metrics');
  assert.equal(metrics.status, 200);
  assert.equal(metrics.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
  assert.equal(metrics.text, 'a 1\n');
});

test('unknown paths get 404 and other methods 405, as JSON errors', async () => {
  const missing = await get('/nope');
  assert.equal(missing.status, 404);
  const body = JSON.parse(missing.text) as { error: { code: string; message: string } };
  assert.equal(body.error.code, 'KMB_ERR_NOT_FOUND');
  assert.match(body.error.message, /\/nope/);
  const post = await get('/metrics', { method: 'POST', body: 'ignored' });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get('allow'), 'GET, HEAD');
  assert.equal(
    (JSON.parse(post.text) as { error: { code: string } }).error.code,
    'KMB_ERR_METHOD_NOT_ALLOWED',
  );
});

test('HEAD is answered like GET without a body', async () => {
  const head = await get('/health/live', { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.text, '');
  assert.equal(head.headers.get('content-length'), String('{"status":"live"}'.length));
});

test('a throwing provider gives 500, is logged, and the server keeps serving', async () => {
  state.failStatus = true;
  const failed = await get('/status');
  state.failStatus = false;
  assert.equal(failed.status, 500);
  const body = JSON.parse(failed.text) as { error: { code: string } };
  assert.equal(body.error.code, 'KMB_ERR_INTERNAL');
  const logged = logLines.map((line) => JSON.parse(line) as { level: string; message: string });
  assert.ok(logged.some((r) => r.level === 'ERROR' && r.message === 'ops request failed'));
  assert.equal((await get('/status')).status, 200);
});

test('a port that is taken fails with KMB_ERR_CONFIG_INVALID', async () => {
  const logger = createLogger({ env: {}, destination: { write: () => true } });
  await assert.rejects(
    startOpsServer({ host: '127.0.0.1', port: server.address.port, provider, logger }),
    (error: unknown) =>
      error instanceof Error && (error as { code?: string }).code === 'KMB_ERR_CONFIG_INVALID',
  );
});

/** A raw socket to `port` whose errors are expected (the server may shed or refuse it). */
function rawSocket(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => resolve(socket));
    socket.once('error', reject);
    socket.on('error', () => undefined);
  });
}

function closed(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed) resolve();
    else socket.once('close', () => resolve());
  });
}

async function startWith(
  extra: Partial<OpsServerOptions>,
  given: OpsProvider = provider,
): Promise<{ ops: OpsServer; url: string; instruments: OpsInstruments; registry: Registry }> {
  const registry = new Registry();
  const instruments = createOpsInstruments(registry);
  const logger = createLogger({ env: {}, destination: { write: () => true } });
  const ops = await startOpsServer({
    host: '127.0.0.1',
    port: 0,
    provider: given,
    logger,
    instruments,
    ...extra,
  });
  return { ops, url: `http://127.0.0.1:${ops.address.port}`, instruments, registry };
}

const smallLimits = { ...opsConnectionDefaults, connectionCountMax: 4 };

test('at the connection cap, idle sockets are shed so health checks still answer', async () => {
  // Proves the gate sheds rather than drops: with a cap of 4, six silent sockets are open (the
  // oldest two already shed), yet /health/ready answers 200, kmb_ops_connections never exceeds
  // the cap and the shed counter counts every socket closed to admit another (6 + 1 - 4 = 3).
  const { ops, url, instruments } = await startWith({ limits: smallLimits });
  const sockets: Socket[] = [];
  try {
    for (let i = 0; i < 6; i++) sockets.push(await rawSocket(ops.address.port));
    await Promise.all(sockets.slice(0, 2).map(closed));
    const response = await fetch(`${url}/health/ready`, { headers: { connection: 'close' } });
    assert.equal(response.status, 200);
    await response.text();
    assert.ok(instruments.connections.current() <= 4);
    assert.equal(instruments.connectionsShedTotal.value, 3);
    assert.equal(instruments.connectionsRefusedTotal.value, 0);
  } finally {
    for (const socket of sockets) socket.destroy();
    await ops.close();
  }
});

test('when every connection is busy, a new one is refused with 503 KMB_ERR_BACKPRESSURE', async () => {
  // Proves the refusal path: with a cap of 2 and two /metrics requests held open by a provider
  // that has not answered, a third connection gets 503 with code KMB_ERR_BACKPRESSURE, counted
  // in kmb_ops_connections_refused_total and kmb_errors_total; once the provider answers, both
  // held requests get 200.
  let release = (): void => undefined;
  const held = new Promise<void>((resolve) => (release = resolve));
  const slow: OpsProvider = {
    ...provider,
    metrics: async () => {
      await held;
      return { contentType: 'text/plain', body: 'a 1\n' };
    },
  };
  const limits = { ...opsConnectionDefaults, connectionCountMax: 2 };
  const { ops, url, instruments } = await startWith({ limits }, slow);
  try {
    const busy = [fetch(`${url}/metrics`), fetch(`${url}/metrics`)];
    while (instruments.connections.current() < 2) await sleepMs(10);
    await sleepMs(50);
    const refused = await fetch(`${url}/health/ready`);
    assert.equal(refused.status, 503);
    const body = (await refused.json()) as { error: { code: string } };
    assert.equal(body.error.code, 'KMB_ERR_BACKPRESSURE');
    assert.equal(instruments.connectionsRefusedTotal.value, 1);
    assert.equal(instruments.errorsTotal(errorCodes.backpressure).value, 1);
    release();
    for (const response of await Promise.all(busy)) assert.equal(response.status, 200);
  } finally {
    release();
    await ops.close();
  }
});

test('a socket that trickles its headers is closed about headersTimeout after it opened', async () => {
  // Proves the timeouts are enforced promptly: with headersTimeoutMs 1000, a socket that sends
  // a request line and then one header byte every 200 ms is closed by the server well within
  // 5 s (a liveness bound; node checks every opsTimeoutCheckIntervalMs). With node's default
  // 30 s checking interval it stayed open up to 30 s past the timeout.
  const limits = { ...opsConnectionDefaults, headersTimeoutMs: 1000, requestTimeoutMs: 1000 };
  const { ops } = await startWith({ limits });
  const socket = await rawSocket(ops.address.port);
  socket.write('GET /health HTTP/1.1\r\nhost: ops\r\n');
  const drip = setInterval(() => socket.write('x'), 200);
  try {
    const timeout = sleepMs(5000).then(() => 'still open');
    assert.equal(await Promise.race([closed(socket).then(() => 'closed'), timeout]), 'closed');
  } finally {
    clearInterval(drip);
    socket.destroy();
    await ops.close();
  }
});

test('/debug/* follows debug_endpoints: loopback and any answer locally, off refuses', async () => {
  // Proves the access modes over real requests from 127.0.0.1 (non-loopback clients are in
  // test/ops_http_hardening.test.ts): "loopback" and "any" answer /debug/logs, "off" answers
  // 403 KMB_ERR_FORBIDDEN naming the setting, counted in kmb_errors_total, while /health still
  // answers; and isLoopbackAddress knows 127/8, ::1 and IPv4-mapped loopback, nothing else.
  for (const mode of ['loopback', 'any'] as const) {
    const { ops, url } = await startWith({ debugEndpoints: mode });
    const response = await fetch(`${url}/debug/logs?lines=1`);
    await response.text();
    await ops.close();
    assert.equal(response.status, 200, mode);
  }
  const { ops, url, instruments } = await startWith({ debugEndpoints: 'off' });
  try {
    const refused = await fetch(`${url}/debug/pprof/heap`);
    assert.equal(refused.status, 403);
    const body = (await refused.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'KMB_ERR_FORBIDDEN');
    assert.match(body.error.message, /debug_endpoints = "off"/);
    assert.equal(instruments.errorsTotal(errorCodes.forbidden).value, 1);
    assert.equal((await fetch(`${url}/health`)).status, 200);
  } finally {
    await ops.close();
  }
  for (const address of ['127.0.0.1', '127.9.8.7', '::1', '::ffff:127.0.0.1', '::FFFF:127.0.0.2']) {
    assert.equal(isLoopbackAddress(address), true, address);
  }
  for (const address of ['192.0.2.2', '128.0.0.1', '::', '::ffff:10.0.0.1', 'fd00::1', undefined]) {
    assert.equal(isLoopbackAddress(address), false, String(address));
  }
});

test('unusable limits fail with KMB_ERR_CONFIG_INVALID before listening', async () => {
  // Proves startOpsServer checks its limits: a cap of 0, a cap above opsConnectionCountMax and
  // a headers timeout above the request timeout are refused with the reason.
  const logger = createLogger({ env: {}, destination: { write: () => true } });
  for (const limits of [
    { ...opsConnectionDefaults, connectionCountMax: 0 },
    { ...opsConnectionDefaults, connectionCountMax: 100_000 },
    { ...opsConnectionDefaults, headersTimeoutMs: 20_000, requestTimeoutMs: 10_000 },
  ]) {
    await assert.rejects(
      startOpsServer({ host: '127.0.0.1', port: 0, provider, logger, limits }),
      (error: unknown) =>
        error instanceof Error && (error as { code?: string }).code === 'KMB_ERR_CONFIG_INVALID',
    );
  }
});
