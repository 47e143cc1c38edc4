// Unit tests of the fault-injecting proxy against a real loopback echo server. Each test sends
// frames (and plain bytes) through the proxy, lets the echo server send them back, and checks
// what arrives at each end: that forwarding is byte-exact in order, and that each fault — rule
// on a frame, stall, cut, partition — does exactly what it says and heal() undoes it.

import { strict as assert } from 'node:assert';
import { createConnection, createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { FrameDecoder, encodeFrame } from '../net/frame.js';
import { FaultProxy } from './fault_proxy.js';
import type { ProxyFrame } from './fault_proxy.js';

/** Echoes every byte back; counts the connections that were closed on it. */
class EchoServer {
  closedCount = 0;
  acceptedCount = 0;
  constructor(readonly server: Server) {
    server.on('connection', (socket: Socket) => {
      this.acceptedCount += 1;
      socket.on('error', () => socket.destroy());
      socket.on('close', () => (this.closedCount += 1));
      socket.pipe(socket);
    });
  }
  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }
}

async function startEcho(): Promise<EchoServer> {
  const server = createServer();
  const echo = new EchoServer(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return echo;
}

/** A client end: collects what arrives and knows when the connection closed. */
class Peer {
  received = Buffer.alloc(0);
  readonly closed: Promise<void>;
  private readonly waiters: Array<() => void> = [];
  constructor(readonly socket: Socket) {
    socket.on('data', (data: Buffer) => {
      this.received = Buffer.concat([this.received, data]);
      for (const wake of this.waiters.splice(0)) wake();
    });
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) => socket.on('close', () => resolve()));
  }
  async waitForBytes(count: number): Promise<void> {
    while (this.received.length < count) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }
  frames(): Array<{ kind: number; body: string }> {
    const { frames } = new FrameDecoder().push(this.received);
    return frames.map((frame) => ({ kind: frame.kind, body: Buffer.from(frame.body).toString() }));
  }
}

async function connectPeer(port: number): Promise<Peer> {
  const socket = createConnection({ host: '127.0.0.1', port });
  const peer = new Peer(socket);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return peer;
}

function frame(kind: number, text: string): Buffer {
  return Buffer.from(encodeFrame(kind, Buffer.from(text)));
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let echo: EchoServer;
before(async () => {
  echo = await startEcho();
});
after(async () => {
  echo.server.close();
});

async function withProxy(work: (proxy: FaultProxy) => Promise<void>): Promise<void> {
  const proxy = await FaultProxy.start({ target: { host: '127.0.0.1', port: echo.port } });
  try {
    await work(proxy);
  } finally {
    await proxy.close();
  }
}

test('forwards frames and plain bytes byte-exact in order, split at any boundary', async () => {
  // Proves forwarding is transparent: the bytes sent one byte at a time come back identical.
  await withProxy(async (proxy) => {
    const peer = await connectPeer(proxy.port);
    const sent = Buffer.concat([frame(3, 'alpha'), frame(4, 'beta'), frame(7, '')]);
    for (const byte of sent) peer.socket.write(Buffer.from([byte]));
    await peer.waitForBytes(sent.length);
    assert.deepEqual(peer.received, sent);
    peer.socket.destroy();
  });
});

test('bytes that are not frames pass through untouched', async () => {
  // Proves a stream that fails frame parsing is still forwarded as plain bytes.
  await withProxy(async (proxy) => {
    const peer = await connectPeer(proxy.port);
    const sent = Buffer.concat([frame(3, 'first'), Buffer.from('GET / HTTP/1.1\r\n\r\n')]);
    peer.socket.write(sent);
    await peer.waitForBytes(sent.length);
    assert.deepEqual(peer.received, sent);
    peer.socket.destroy();
  });
});

test('observers see every frame once with its direction and index', async () => {
  // Proves observe(): each frame is reported going to the server and coming back, in order.
  await withProxy(async (proxy) => {
    const seen: ProxyFrame[] = [];
    proxy.observe((f) => seen.push(f));
    const peer = await connectPeer(proxy.port);
    peer.socket.write(Buffer.concat([frame(1, 'a'), frame(2, 'b')]));
    await peer.waitForBytes(2 * frame(1, 'a').length);
    const summary = seen.map((f) => `${f.direction}:${f.index}:${f.kind}`);
    assert.deepEqual(summary, ['to_server:0:1', 'to_server:1:2', 'to_client:0:1', 'to_client:1:2']);
    peer.socket.destroy();
  });
});

test('drop_and_close drops the matching frame and closes both sides', async () => {
  // Proves the exactly-once fault: the reply frame never reaches the client, and both the client
  // and the server side see their connection closed.
  await withProxy(async (proxy) => {
    const closedBefore = echo.closedCount;
    const rule = proxy.onFrame({
      direction: 'to_client',
      match: (f) => f.kind === 4,
      action: 'drop_and_close',
    });
    const peer = await connectPeer(proxy.port);
    peer.socket.write(Buffer.concat([frame(3, 'request'), frame(4, 'reply'), frame(5, 'x')]));
    const fired = await rule.fired;
    await peer.closed;
    assert.equal(fired.kind, 4);
    assert.deepEqual(peer.frames(), [{ kind: 3, body: 'request' }]);
    while (echo.closedCount === closedBefore) await pause(5);
    assert.equal(proxy.connectionCount, 0);
  });
});

test('forward_and_close delivers the matching frame, then closes', async () => {
  // Proves the "close right after it passed" fault: the frame arrives whole, nothing after it.
  await withProxy(async (proxy) => {
    proxy.onFrame({
      direction: 'to_client',
      match: (f) => f.index === 1,
      action: 'forward_and_close',
    });
    const peer = await connectPeer(proxy.port);
    peer.socket.write(Buffer.concat([frame(3, 'one'), frame(3, 'two'), frame(3, 'three')]));
    await peer.closed;
    assert.deepEqual(
      peer.frames().map((f) => f.body),
      ['one', 'two'],
    );
  });
});

test('drop loses one frame and keeps the connection', async () => {
  // Proves a lost message without a disconnect: the next frames still arrive.
  await withProxy(async (proxy) => {
    proxy.onFrame({ direction: 'to_server', match: (f) => f.index === 0, action: 'drop' });
    const peer = await connectPeer(proxy.port);
    peer.socket.write(Buffer.concat([frame(3, 'lost'), frame(3, 'kept')]));
    await peer.waitForBytes(frame(3, 'kept').length);
    assert.deepEqual(peer.frames(), [{ kind: 3, body: 'kept' }]);
    peer.socket.destroy();
  });
});

test('stall holds bytes in both directions until heal, then delivers them in order', async () => {
  // Proves stall(): nothing arrives while stalled (checked after an echo on a fresh connection
  // would have long completed), and heal() delivers everything, in order.
  await withProxy(async (proxy) => {
    const peer = await connectPeer(proxy.port);
    proxy.stall();
    const sent = Buffer.concat([frame(3, 'held-1'), frame(3, 'held-2')]);
    peer.socket.write(sent);
    await pause(100);
    assert.equal(peer.received.length, 0);
    proxy.heal();
    await peer.waitForBytes(sent.length);
    assert.deepEqual(peer.received, sent);
    peer.socket.destroy();
  });
});

test('a stall rule holds the match and what follows; each frame is judged once', async () => {
  // Proves the rule form of stall: frames before the match arrive, the rest after heal(), and
  // observers do not see the held frames twice.
  await withProxy(async (proxy) => {
    const seen: number[] = [];
    proxy.observe((f) => {
      if (f.direction === 'to_client') seen.push(f.index);
    });
    proxy.onFrame({ direction: 'to_client', match: (f) => f.index === 1, action: 'stall' });
    const peer = await connectPeer(proxy.port);
    const frames = [frame(3, 'a'), frame(3, 'b'), frame(3, 'c')];
    peer.socket.write(Buffer.concat(frames));
    await peer.waitForBytes(frames[0]?.length ?? 0);
    await pause(100);
    assert.deepEqual(peer.frames(), [{ kind: 3, body: 'a' }]);
    proxy.heal();
    await peer.waitForBytes(Buffer.concat(frames).length);
    assert.deepEqual(
      peer.frames().map((f) => f.body),
      ['a', 'b', 'c'],
    );
    assert.deepEqual(seen, [0, 1, 2]);
    peer.socket.destroy();
  });
});

test('cutAll closes open connections; new connections still work', async () => {
  // Proves cutAll(): the open connection is closed at once and a reconnect succeeds.
  await withProxy(async (proxy) => {
    const first = await connectPeer(proxy.port);
    first.socket.write(frame(3, 'ping'));
    await first.waitForBytes(frame(3, 'ping').length);
    proxy.cutAll();
    await first.closed;
    const second = await connectPeer(proxy.port);
    second.socket.write(frame(3, 'again'));
    await second.waitForBytes(frame(3, 'again').length);
    assert.deepEqual(second.frames(), [{ kind: 3, body: 'again' }]);
    second.socket.destroy();
  });
});

test('partition refuses new connections until heal', async () => {
  // Proves partition(): a connection made during it is closed without reaching the target.
  await withProxy(async (proxy) => {
    proxy.partition();
    const acceptedBefore = echo.acceptedCount;
    const refused = await connectPeer(proxy.port);
    refused.socket.write(frame(3, 'nobody'));
    await refused.closed;
    assert.equal(refused.received.length, 0);
    assert.equal(echo.acceptedCount, acceptedBefore);
    proxy.heal();
    const peer = await connectPeer(proxy.port);
    peer.socket.write(frame(3, 'hello'));
    await peer.waitForBytes(frame(3, 'hello').length);
    peer.socket.destroy();
  });
});

test('retarget sends new connections to another server', async () => {
  // Proves retarget(): after it, a new connection reaches the second server.
  const other = await startEcho();
  try {
    await withProxy(async (proxy) => {
      proxy.retarget({ host: '127.0.0.1', port: other.port });
      const peer = await connectPeer(proxy.port);
      peer.socket.write(frame(3, 'moved'));
      await peer.waitForBytes(frame(3, 'moved').length);
      assert.equal(other.acceptedCount, 1);
      peer.socket.destroy();
    });
  } finally {
    other.server.close();
  }
});

test('a half-close is passed on after the bytes before it', async () => {
  // Proves that an end from the client reaches the server after the data, and the echo of that
  // data still reaches the client before the connection closes.
  await withProxy(async (proxy) => {
    const peer = await connectPeer(proxy.port);
    const sent = frame(3, 'last words');
    peer.socket.end(sent);
    await peer.closed;
    assert.deepEqual(peer.received, sent);
  });
});
