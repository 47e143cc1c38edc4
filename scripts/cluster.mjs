#!/usr/bin/env node
// `npm run cluster`: a local cluster of kimberlite-server processes for trying replication by
// hand. Node i listens on 127.0.0.1:(base-port + i) for clients and replicas and on
// 127.0.0.1:(metrics-base-port + i) for ops HTTP, keeps its data in ./data/cluster/node-i, and
// belongs to the cluster "local". Each node's log lines are shown with a [node-i] prefix (shortened
// to time, level, message and fields; --raw-logs keeps the JSON). Once every node is ready the
// script prints how to point kimberlite-cli at the cluster. Ctrl-C or SIGTERM stops every node
// gracefully (SIGKILL after 15 s); a node that dies meanwhile is reported with the command that
// restarts it, and the others keep running.
//
// Usage: node scripts/cluster.mjs [--nodes N (1..5, default 3)] [--base-port P (default 7001)]
//        [--metrics-base-port P (default 9091)] [--cluster-name NAME (default local)]
//        [--data-dir DIR (default ./data/cluster)] [--fresh] [--raw-logs]
// Exit codes: 0 stopped cleanly, 1 a node failed to start or to stop cleanly, 2 bad usage.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
// npm run cluster builds first, so the compiled flag list is there.
import { serverNodeFlags } from '../dist/cli/node_flags.js';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const serverBin = join(repoRoot, 'bin', 'kimberlite-server.js');
const nodeCountMax = 5;
const stopTimeoutMs = 15_000;
const readyTimeoutMs = 30_000;

function usage(message) {
  process.stderr.write(`cluster: ${message}\n`);
  process.stderr.write(
    'usage: node scripts/cluster.mjs [--nodes 1..5] [--base-port P] [--metrics-base-port P] ' +
      '[--cluster-name NAME] [--data-dir DIR] [--fresh] [--raw-logs]\n',
  );
  process.exit(2);
}

function integer(text, name, min, max) {
  const value = Number(text);
  if (!/^\d+$/.test(String(text)) || value < min || value > max) {
    usage(`--${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(text)}`);
  }
  return value;
}

function options() {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        nodes: { type: 'string', default: '3' },
        'base-port': { type: 'string', default: '7001' },
        'metrics-base-port': { type: 'string', default: '9091' },
        'cluster-name': { type: 'string', default: 'local' },
        'data-dir': { type: 'string', default: join('data', 'cluster') },
        fresh: { type: 'boolean', default: false },
        'raw-logs': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    });
  } catch (error) {
    usage(error.message);
  }
  const { values } = parsed;
  if (values.help) {
    process.stdout.write(
      'Starts a local kimberlite cluster (see the comment at the top of scripts/cluster.mjs).\n',
    );
    process.exit(0);
  }
  const nodes = integer(values.nodes, 'nodes', 1, nodeCountMax);
  const basePort = integer(values['base-port'], 'base-port', 1, 65_535 - nodes + 1);
  const metricsBasePort = integer(
    values['metrics-base-port'],
    'metrics-base-port',
    1,
    65_535 - nodes + 1,
  );
  const clientPorts = new Set(Array.from({ length: nodes }, (_, i) => basePort + i));
  if (
    Array.from({ length: nodes }, (_, i) => metricsBasePort + i).some((p) => clientPorts.has(p))
  ) {
    usage('the client ports and the metrics ports overlap; move --metrics-base-port');
  }
  return {
    nodes,
    basePort,
    metricsBasePort,
    clusterName: values['cluster-name'],
    dataRoot: values['data-dir'],
    fresh: values.fresh,
    rawLogs: values['raw-logs'],
  };
}

/** One log line for a person: time, level, message, then the fields as key=value. */
function pretty(line) {
  let record;
  try {
    record = JSON.parse(line);
  } catch {
    return line;
  }
  if (record === null || typeof record !== 'object' || typeof record.message !== 'string') {
    return line;
  }
  const time = typeof record.timestamp === 'string' ? record.timestamp.slice(11, 23) : '';
  const fields = Object.entries(record.fields ?? {})
    .filter(([key]) => key !== 'node_id')
    .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
    .join(' ');
  const level = String(record.level ?? '').padEnd(5);
  return `${time} ${level} ${record.message}${fields ? ` ${fields}` : ''}`;
}

/** Calls `onLine` with every whole line of a stream. */
function lines(stream, onLine) {
  let partial = '';
  stream.setEncoding('utf8');
  stream.on('data', (text) => {
    const parts = (partial + text).split('\n');
    partial = parts.pop() ?? '';
    for (const part of parts) if (part !== '') onLine(part);
  });
  stream.on('end', () => {
    if (partial !== '') onLine(partial);
  });
}

function describeExit(code, signal) {
  return signal === null ? `exit code ${code}` : `signal ${signal}`;
}

const config = options();
const addresses = Array.from(
  { length: config.nodes },
  (_, i) => `127.0.0.1:${config.basePort + i}`,
);
const metrics = Array.from(
  { length: config.nodes },
  (_, i) => `127.0.0.1:${config.metricsBasePort + i}`,
);
const dataDirs = Array.from({ length: config.nodes }, (_, i) => join(config.dataRoot, `node-${i}`));

function argsOf(id) {
  return [
    serverBin,
    '--node-id',
    String(id),
    '--cluster-peers',
    addresses.join(','),
    '--address',
    addresses[id],
    '--metrics-address',
    metrics[id],
    '--data-dir',
    dataDirs[id],
    '--cluster-name',
    config.clusterName,
  ];
}

/** The shell command that starts node `id` again, for the operator. */
function restartCommand(id) {
  const [bin, ...rest] = argsOf(id);
  const near = relative(process.cwd(), bin);
  return `node ${near.startsWith('..') ? bin : near} ${rest.join(' ')}`;
}

const nodes = [];
let stopping = false;

function say(text) {
  process.stdout.write(`${text}\n`);
}

function startNode(id) {
  const child = spawn(process.execPath, [...serverNodeFlags, ...argsOf(id)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const node = { id, child, ready: false, exit: null };
  const prefix = `[node-${id}]`;
  node.readyPromise = new Promise((resolve, reject) => {
    lines(child.stdout, (line) => {
      say(`${prefix} ${config.rawLogs ? line : pretty(line)}`);
      if (!node.ready && line.includes('"message":"Node ready"')) {
        node.ready = true;
        resolve();
      }
    });
    lines(child.stderr, (line) => process.stderr.write(`${prefix} ${line}\n`));
    node.exited = new Promise((done) => {
      child.on('close', (code, signal) => {
        node.exit = { code, signal };
        if (!node.ready)
          reject(new Error(`${prefix} exited before it was ready (${describeExit(code, signal)})`));
        else if (!stopping) {
          say(`${prefix} exited (${describeExit(code, signal)}); the others keep running`);
          say(`${prefix} restart it with: ${restartCommand(id)}`);
        }
        done(node.exit);
      });
    });
    child.on('error', (error) => reject(new Error(`${prefix} could not start: ${error.message}`)));
  });
  // A rejection after main() stopped waiting (another node failed first) is not news.
  node.readyPromise.catch(() => undefined);
  nodes.push(node);
  return node;
}

/**
 * Stops every node still running: SIGTERM, then SIGKILL after stopTimeoutMs. Resolves with the
 * exits of the nodes it stopped (those that had died before were reported then).
 */
async function stopAll() {
  stopping = true;
  const running = nodes.filter((node) => node.exit === null);
  const exits = running.map(async (node) => {
    node.child.kill('SIGTERM');
    const timer = setTimeout(() => {
      if (node.exit === null) {
        say(`[node-${node.id}] did not stop within ${stopTimeoutMs} ms: SIGKILL`);
        node.child.kill('SIGKILL');
      }
    }, stopTimeoutMs);
    const exit = await node.exited;
    clearTimeout(timer);
    return exit;
  });
  return Promise.all(exits);
}

function banner() {
  const cluster = addresses.join(',');
  say('');
  say(
    `kimberlite cluster "${config.clusterName}": ${config.nodes} node` +
      `${config.nodes === 1 ? '' : 's'} ready`,
  );
  for (const node of nodes) {
    say(
      `  node ${node.id}  ${addresses[node.id]}  ops http://${metrics[node.id]}  ` +
        `data ${dataDirs[node.id]}  pid ${node.child.pid}`,
    );
  }
  say('');
  say('In another terminal:');
  say(`  export KMB_CLUSTER=${cluster}`);
  say('  npx kimberlite-cli cluster status');
  say('  npx kimberlite-cli tenant create --name clinic');
  say('  npx kimberlite-cli replication lag --all');
  say('  npx kimberlite-cli cluster view-changes --since 10m');
  say(`  curl -s http://${metrics[0]}/status`);
  say('Kill a node (kill -9 PID) to watch a failover. Ctrl-C stops every node.');
  say('');
}

async function main() {
  if (!existsSync(serverBin) || !existsSync(join(repoRoot, 'dist', 'cli', 'server.js'))) {
    process.stderr.write('cluster: dist/ is missing; run `npm run build` first\n');
    process.exit(1);
  }
  if (config.fresh) await rm(config.dataRoot, { recursive: true, force: true });
  let interrupted = false;
  const onSignal = (signal) => {
    if (interrupted) return;
    interrupted = true;
    say(`cluster: ${signal}: stopping every node`);
    void stopAll().then((exits) => {
      const clean = exits.every((exit) => exit.code === 0);
      process.exit(clean ? 0 : 1);
    });
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  for (let id = 0; id < config.nodes; id++) startNode(id);
  let timer;
  const expired = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`not every node was ready within ${readyTimeoutMs} ms`)),
      readyTimeoutMs,
    );
  });
  try {
    await Promise.race([Promise.all(nodes.map((node) => node.readyPromise)), expired]);
  } catch (error) {
    if (interrupted) return;
    process.stderr.write(`cluster: ${error.message}; stopping the others\n`);
    await stopAll();
    process.exit(1);
  } finally {
    clearTimeout(timer);
  }
  if (!interrupted) banner();
}

await main();
