// Proves the harness's log-shape check can fail: a real server told to log in the text format
// (KMB_LOG_FORMAT=text) writes lines that are not spec-shaped JSON, and the cleanup of the
// harness that started it throws, naming them. (Every other test's servers pass the same check.)

import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import { Harness, logShapeProblem } from './harness.js';

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
