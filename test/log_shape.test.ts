// Proves the harness's log-shape check can fail: a real server told to log in the text format
// (KMB_LOG_FORMAT=text) writes lines that are not spec-shaped JSON, and the cleanup of the
// harness that started it throws, naming them. (Every other test's servers pass the same check.)
// And that per-module levels reach a real server: KMB_LOG=kimberlite=info,kimberlite_net=debug
// (and the same through RUST_LOG) brings out the DEBUG "Client request failed" lines of
// kmb_net with their codes and nothing else at DEBUG; without it there are none.

import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import { Harness, logShapeProblem } from './harness.js';
import type { LogLine } from './harness.js';

test('a server writing text log lines fails the harness cleanup', async (t) => {
  let cleanup: (() => Promise<void>) | null = null;
  const context = {
    after: (fn: () => Promise<void>) => {
      cleanup = fn;
    },
  } as unknown as TestContext;
  const inner = new Harness(context);
  const outer = new Harness(t);
  const dataDir = await outer.tempDir();
  await assert.rejects(
    inner.startServer({ dataDir, env: { KMB_LOG_FORMAT: 'text' }, readyTimeoutMs: 3_000 }),
    /did not become ready/,
  );
  assert.ok(cleanup !== null);
  await assert.rejects((cleanup as () => Promise<void>)(), (error: Error) => {
    assert.match(error.message, /not JSON log lines/);
    assert.match(error.message, /stdout \(not JSON\): \S+Z +INFO kmb_server: Starting node/);
    return true;
  });
  // The checker itself, on a spec line and on near misses.
  const line = {
    timestamp: '2024-01-15T10:30:00.000Z',
    level: 'INFO',
    target: 'kmb_consensus',
    message: 'Became leader',
    fields: { node_id: 1, view: 5 },
  };
  assert.equal(logShapeProblem(JSON.stringify(line)), null);
  assert.equal(logShapeProblem(JSON.stringify({ ...line, level: 'info' })), 'bad level');
  assert.equal(
    logShapeProblem(JSON.stringify({ ...line, extra: 1 })),
    'keys are not ' + 'timestamp,level,target,message,fields',
  );
  assert.equal(logShapeProblem(JSON.stringify({ ...line, fields: [] })), 'fields is not an object');
});

async function clientErrorLines(t: TestContext, env: Record<string, string>): Promise<LogLine[]> {
  const h = new Harness(t);
  const server = await h.startServer({ dataDir: await h.tempDir(), env });
  const client = await h.connect({ addresses: [server.address] });
  await client.createTenant('dup');
  await assert.rejects(client.createTenant('dup'), { code: 'KMB_ERR_TENANT_EXISTS' });
  await assert.rejects(client.listStreams(99), { code: 'KMB_ERR_TENANT_NOT_FOUND' });
  await server
    .waitForLine((l) => l.fields['code'] === 'KMB_ERR_TENANT_NOT_FOUND', 2_000)
    .catch(() => undefined);
  await server.stop();
  return server.lines.filter((l) => l.level === 'DEBUG');
}

test('KMB_LOG and RUST_LOG set levels per module on a real server', async (t) => {
  for (const name of ['KMB_LOG', 'RUST_LOG']) {
    const debug = await clientErrorLines(t, { [name]: 'kimberlite=info,kimberlite_net=debug' });
    const codes = debug.map((l) => [l.target, l.message, l.fields['code']]);
    assert.deepEqual(codes, [
      ['kmb_net', 'Client request failed', 'KMB_ERR_TENANT_EXISTS'],
      ['kmb_net', 'Client request failed', 'KMB_ERR_TENANT_NOT_FOUND'],
    ]);
    for (const line of debug) {
      assert.equal(line.fields['node_id'], 0);
      assert.equal(typeof line.fields['view'], 'number');
    }
  }
  assert.deepEqual(await clientErrorLines(t, {}), []);
});
