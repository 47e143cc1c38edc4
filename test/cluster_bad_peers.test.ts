// Bad peers on the replica port, with real processes: a replica of another cluster, garbage
// bytes (as a first frame, and after a replica hello for a replica whose link is live), and a
// connection that says nothing. test/forged_peer.test.ts has what a peer that does get a link
// may send.

import { strict as assert } from 'node:assert';
import { connect as netConnect } from 'node:net';
import type { Socket } from 'node:net';
import { test } from 'node:test';
import { randomBytes } from 'node:crypto';
import type { Client } from '../src/client/client.js';
import { clusterIdFromName } from '../src/core/header.js';
import { encodeFrame } from '../src/net/frame.js';
import {
  encodeReplicaHello,
  replicaFrameKind,
  replicaProtocolVersion,
} from '../src/net/replica_bus.js';
import { Harness } from './harness.js';
import type { LogLine, ServerProcess } from './harness.js';
import { TestCluster, freePorts, hangTimeoutMs } from './cluster_harness.js';

/** How long a node may take to notice and log a bad peer (its hello timeout is 10 s). */
const noticeTimeoutMs = 20_000;

function mentions(line: LogLine, text: string): boolean {
  return JSON.stringify(line).includes(text);
}

/** A warning or error logged after `since` lines that mentions `text`. */
function waitForMention(server: ServerProcess, since: number, text: string): Promise<LogLine> {
  return server.waitForLine(
    (line) =>
      server.lines.indexOf(line) >= since &&
      (line.level === 'WARN' || line.level === 'ERROR') &&
      mentions(line, text),
    noticeTimeoutMs,
  );
}

async function rawSocket(address: string): Promise<Socket> {
  const at = address.lastIndexOf(':');
  const socket = netConnect({ host: address.slice(0, at), port: Number(address.slice(at + 1)) });
  socket.on('error', () => undefined);
  socket.resume(); // Whatever the node answers is read and dropped, so its close is seen.
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return socket;
}

/** Resolves when the node has closed the connection; fails after noticeTimeoutMs. */
function closed(socket: Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    if (socket.destroyed) return resolve();
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the node did not close the connection within ${noticeTimeoutMs} ms`));
    }, noticeTimeoutMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** The cluster still commits and a quorum is normal under one leader. */
async function stillServes(cluster: TestCluster, db: Client, label: string): Promise<void> {
  const tenant = await db.createTenant(`after-${label}`);
  assert.ok(tenant.tenantId > 0);
  const { leader } = await cluster.waitForLeader();
  const statuses = await cluster.statuses();
  const normal = statuses.filter((s) => s?.status === 'normal' && s.leader === leader);
  assert.equal(normal.length, cluster.size, `every replica follows ${leader} after ${label}`);
}

test(
  'bad peers are refused with a logged reason and the cluster keeps serving',
  { timeout: hangTimeoutMs },
  async (t) => {
    const h = new Harness(t);
    const cluster = await TestCluster.start(h, { name: 'good-cluster' });
    await cluster.waitForLeader();
    const db = await cluster.connect({ requestTimeoutMs: 20_000 });
    await db.createTenant('before');

    await t.test('a replica configured with another cluster name', async (st) => {
      // Proves the replica hello's cluster check: a server started as replica 0 of a cluster
      // named "other-cluster", with replicas 1 and 2 of this cluster as its peers, dials them;
      // each refuses the link and logs a warning naming the other cluster, and this cluster
      // keeps committing with all three of its replicas normal.
      const [port] = await freePorts(1);
      const rogueAddress = `127.0.0.1:${port}`;
      const peers = [rogueAddress, cluster.addresses[1], cluster.addresses[2]].join(',');
      const since = [1, 2].map((id) => cluster.node(id).lines.length);
      await h.startServer({
        address: rogueAddress,
        dataDir: await h.tempDir('kmb-rogue-'),
        args: ['--node-id', '0', '--cluster-peers', peers, '--cluster-name', 'other-cluster'],
      });
      const line = await Promise.any(
        [1, 2].map((id) => waitForMention(cluster.node(id), since[id - 1] ?? 0, 'other-cluster')),
      );
      st.diagnostic(`logged: ${line.message} ${JSON.stringify(line.fields)}`);
      await stillServes(cluster, db, 'rogue');
    });

    await t.test('garbage bytes as the first frame', async (st) => {
      // Proves framing at the replica/client port: bytes that are not a frame (no magic) are
      // refused; the node logs a warning naming the sender's address and closes the connection.
      const target = cluster.node(2);
      const since = target.lines.length;
      const socket = await rawSocket(target.address);
      const sender = `127.0.0.1:${socket.localPort ?? 0}`;
      socket.write(
        Buffer.concat([Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), randomBytes(64)]),
      );
      const line = await waitForMention(target, since, sender);
      st.diagnostic(`logged: ${line.message} ${JSON.stringify(line.fields)}`);
      await closed(socket);
      await stillServes(cluster, db, 'garbage');
    });

    await t.test('garbage bytes after a replica hello', async (st) => {
      // Proves a stranger cannot take a live link over: a connection that introduces itself as
      // replica 0 of this cluster (a valid hello) while replica 0's link is up, then sends
      // garbage, is refused at its hello (issue 14: before, it replaced the real link); the node
      // logs a warning naming replica 0, closes the connection, and the cluster keeps serving
      // with every replica normal.
      const target = cluster.node(2);
      const since = target.lines.length;
      const socket = await rawSocket(target.address);
      const hello = encodeReplicaHello({
        protocolVersion: replicaProtocolVersion,
        clusterName: cluster.name,
        cluster: clusterIdFromName(cluster.name),
        replica: 0,
        replicaCount: cluster.size,
      });
      socket.write(encodeFrame(replicaFrameKind.hello, hello));
      socket.write(randomBytes(256));
      const line = await waitForMention(target, since, 'replica 0');
      st.diagnostic(`logged: ${line.message} ${JSON.stringify(line.fields)}`);
      await closed(socket);
      await stillServes(cluster, db, 'garbage after hello');
    });

    await t.test('a peer that connects and stalls', async (st) => {
      // Proves the hello timeout: a connection that sends half a frame header and then nothing
      // holds no resources forever; the node logs a warning naming its address and closes it,
      // and the cluster serves meanwhile.
      const target = cluster.node(1);
      const since = target.lines.length;
      const socket = await rawSocket(target.address);
      const sender = `127.0.0.1:${socket.localPort ?? 0}`;
      socket.write(encodeFrame(replicaFrameKind.hello, new Uint8Array(8)).subarray(0, 6));
      await stillServes(cluster, db, 'stall (while stalled)');
      const line = await waitForMention(target, since, sender);
      st.diagnostic(`logged: ${line.message} ${JSON.stringify(line.fields)}`);
      await closed(socket);
      await stillServes(cluster, db, 'stall');
    });
  },
);
