// `npm run cluster` (scripts/cluster.mjs) as a user runs it: a local 3-node cluster in the
// working directory, driven with kimberlite-cli, stopped with SIGTERM.

import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { Harness, cleanEnv, repoRoot, within } from './harness.js';
import { hangTimeoutMs } from './cluster_harness.js';

const script = join(repoRoot, 'scripts', 'cluster.mjs');

/** Whether a loopback port can be bound now. */
async function portFree(port: number): Promise<boolean> {
  const server = createServer();
  const bound = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => resolve(true));
  });
  if (bound) await new Promise<void>((resolve) => server.close(() => resolve()));
  return bound;
}

/** A base port with `count` free consecutive ports above it. */
async function freeRun(count: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 40_000);
    const ports = Array.from({ length: count }, (_, i) => base + i);
    if ((await Promise.all(ports.map(portFree))).every(Boolean)) return base;
  }
  throw new Error(`no ${count} consecutive free ports found`);
}

function refused(address: string): Promise<boolean> {
  const at = address.lastIndexOf(':');
  return new Promise((resolve) => {
    const socket = netConnect({ host: address.slice(0, at), port: Number(address.slice(at + 1)) });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

test(
  'npm run cluster starts, serves and stops a local cluster',
  { timeout: hangTimeoutMs },
  async (t) => {
    // Proves scripts/cluster.mjs does what README "A local cluster" shows: it starts three nodes
    // on consecutive ports with their data under ./data/cluster/node-N, prefixes every node's log
    // lines with [node-N], prints the KMB_CLUSTER line to use with kimberlite-cli once all are
    // ready; `kimberlite-cli cluster status` against that line finds one leader and three
    // reachable replicas of the cluster "local"; SIGTERM stops every node gracefully and the
    // script exits 0 with nothing left listening. A bad --nodes is a usage error (exit 2).
    const h = new Harness(t);
    const cwd = await h.tempDir('kmb-script-');
    const usage = spawn(process.execPath, [script, '--nodes', '9'], { cwd, env: cleanEnv() });
    const usageCode = await new Promise<number | null>((resolve) => usage.on('close', resolve));
    assert.equal(usageCode, 2);

    const base = await freeRun(3);
    const metricsBase = await freeRun(3);
    const args = ['--base-port', String(base), '--metrics-base-port', String(metricsBase)];
    const child = spawn(process.execPath, [script, ...args], { cwd, env: cleanEnv() });
    t.after(async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await new Promise((resolve) => child.once('close', resolve));
      }
    });
    let stdout = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (text: string) => (stdout += text));
    child.stderr.resume();
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    const banner = await within(
      (async () => {
        for (;;) {
          const match = /export KMB_CLUSTER=(\S+)/.exec(stdout);
          if (match?.[1] !== undefined) return match[1];
          if (child.exitCode !== null) throw new Error(`the script exited:\n${stdout}`);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      })(),
      30_000,
      'the KMB_CLUSTER line',
    );
    const addresses = [0, 1, 2].map((i) => `127.0.0.1:${base + i}`);
    assert.equal(banner, addresses.join(','));
    for (const id of [0, 1, 2]) {
      assert.match(stdout, new RegExp(`^\\[node-${id}\\] .*Node ready`, 'm'));
      assert.ok(existsSync(join(cwd, 'data', 'cluster', `node-${id}`)), `data of node ${id}`);
    }

    const status = await h.runCli(['cluster', 'status', '--json'], {
      env: { KMB_CLUSTER: banner },
    });
    assert.equal(status.code, 0, status.stdout + status.stderr);
    const report = JSON.parse(status.stdout) as Record<string, unknown>;
    assert.equal(report['cluster_name'], 'local');
    assert.equal(report['reachable_replicas'], 3);
    assert.equal(typeof report['leader'], 'number');

    child.kill('SIGTERM');
    assert.equal(await within(exited, 30_000, 'the script to stop'), 0, stdout);
    for (const address of addresses) assert.ok(await refused(address), `${address} stopped`);
    assert.match(stdout, /\[node-0\] .*Stopped/);
  },
);
