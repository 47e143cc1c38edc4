// Proves `kimberlite-cli stream read --consistency stale [--lag-ops-max N]` sends its reads with
// that consistency (the name lookups before it stay linearizable), that a plain read sends
// none (linearizable), and that the options are checked before anything is read.

import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { QueryMessage } from '../net/client_protocol.js';
import { FakeServer } from '../testing/fake_server.js';
import { runCli } from './cli.js';

const queries: QueryMessage[] = [];
let server: FakeServer;
before(async () => {
  server = await FakeServer.start({
    hooks: {
      onQuery: (query) => {
        queries.push(query);
        return 'answer';
      },
    },
  });
});
after(async () => {
  await server.close();
});

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const chunks = { stdout: '', stderr: '' };
  stdout.on('data', (data: Buffer) => (chunks.stdout += data.toString()));
  stderr.on('data', (data: Buffer) => (chunks.stderr += data.toString()));
  const stdin = new PassThrough();
  stdin.end();
  const code = await runCli(args, { stdout, stderr, stdin, env: { KMB_CLUSTER: server.address } });
  return { code, ...chunks };
}

function readConsistencies(): unknown[] {
  return queries.filter((q) => q.query.kind === 'read_stream').map((q) => q.consistency);
}

describe('stream read consistency', () => {
  it('sends stale reads when asked and linearizable ones otherwise', async () => {
    assert.equal((await cli(['tenant', 'create', '--name', 'c'])).code, 0);
    assert.equal((await cli(['stream', 'create', '--tenant', 'c', '--name', 's'])).code, 0);
    const target = ['--tenant', 'c', '--stream', 's'];
    assert.equal((await cli(['stream', 'append', ...target, '--data', '[1,2]'])).code, 0);

    queries.length = 0;
    const plain = await cli(['stream', 'read', ...target]);
    assert.equal(plain.code, 0, plain.stderr);
    const stale = await cli(['stream', 'read', ...target, '--consistency', 'stale']);
    assert.equal(stale.stdout, plain.stdout);
    const bounded = ['--consistency', 'stale', '--lag-ops-max', '0'];
    assert.equal((await cli(['stream', 'read', ...target, ...bounded])).code, 0);
    assert.deepEqual(readConsistencies(), [
      undefined,
      { kind: 'stale', lagOpsMax: 100 },
      { kind: 'stale', lagOpsMax: 0 },
    ]);
    const lookups = queries.filter((q) => q.query.kind !== 'read_stream');
    assert.ok(
      lookups.every((q) => q.consistency === undefined),
      'name lookups stay linearizable',
    );

    queries.length = 0;
    const wrong = await cli(['stream', 'read', ...target, '--consistency', 'eventual']);
    assert.equal(wrong.code, 2);
    const orphan = await cli(['stream', 'read', ...target, '--lag-ops-max', '5']);
    assert.equal(orphan.code, 2);
    assert.match(orphan.stderr, /--lag-ops-max goes with --consistency stale/);
    assert.deepEqual(readConsistencies(), []);
  });
});
