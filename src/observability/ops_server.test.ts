// Proves, against a real server on port 0, that each ops route answers with the status code
// and body documented in ops_server.ts: 200/503 for the health checks (rstmdb's /health
// included) as the provider says,
// /status and /metrics from the provider, 404 and 405 as JSON errors, 500 (logged) when the
// provider throws while the server keeps serving, HEAD without a body, and a clean close.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createLogger } from './logger.js';
import { startOpsServer, type OpsProvider, type OpsServer } from './ops_server.js';

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
