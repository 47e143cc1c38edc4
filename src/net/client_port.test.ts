// In-process tests of the client port's first-frame routing and of the limits that act before
// a connection becomes a client: a replica hello goes to onReplicaHello with the decoder that
// read it (and is not counted as a client), bytes of a first frame that has not fully arrived
// count against the frame buffer budget (a connection announcing a huge first frame is closed
// with KMB_ERR_BACKPRESSURE once it holds too much), and a client past the connection limit is
// answered with an error frame before its connection is closed. Real sockets on loopback.

import { strict as assert } from 'node:assert';
import { createConnection } from 'node:net';
import type { Socket } from 'node:net';
import { describe, it } from 'node:test';
import { constants } from '../core/constants.js';
import { errorCodes } from '../core/errors.js';
import { asView } from '../core/types.js';
import { decodeMessage, encodeMessageFrame } from './client_protocol.js';
import type { ClientMessage } from './client_protocol.js';
import { ClientPort } from './client_port.js';
import type { ClientPortEvents, ClientPortHandlers } from './client_port.js';
import { FrameDecoder, encodeFrame, frameHeaderSizeBytes, frameMagic } from './frame.js';
import { replicaFrameKind } from './replica_bus.js';

interface Recorded {
  readonly events: string[];
  readonly replicaSockets: Socket[];
}

async function openPort(limits: { connectionCountMax: number; budgetBytes: number }) {
  const recorded: Recorded = { events: [], replicaSockets: [] };
  const handlers: ClientPortHandlers = {
    onClientMessage: (connection, message) => {
      if (message.kind === 'hello') {
        connection.send({
          kind: 'hello_ok',
          helloOk: {
            protocolVersion: 1,
            clusterName: 't',
            nodeId: 0,
            replicaCount: 1,
            view: asView(0),
            leader: 0,
          },
        });
      }
    },
    onConnectionClosed: () => undefined,
    onReplicaHello: (socket) => {
      recorded.replicaSockets.push(socket);
      return true;
    },
  };
  const events: ClientPortEvents = {
    protocolError: (code) => recorded.events.push(`protocol:${code}`),
    rejected: (reason) => recorded.events.push(`rejected:${reason}`),
    closed: (reason) => recorded.events.push(`closed:${reason}`),
  };
  const port = await ClientPort.listen({
    host: '127.0.0.1',
    port: 0,
    limits: {
      connectionCountMax: limits.connectionCountMax,
      idleTimeoutMs: 60_000,
      frameTimeoutMs: 60_000,
      frameBufferBudgetBytes: limits.budgetBytes,
    },
    handlers,
    events,
  });
  return { port, recorded };
}

/** A socket to the port that records decoded messages and resolves `closed` when it ends. */
function dial(port: ClientPort) {
  const socket = createConnection({ host: '127.0.0.1', port: port.boundPort });
  const decoder = new FrameDecoder();
  const messages: ClientMessage[] = [];
  let errored = false;
  socket.on('error', () => {
    errored = true;
  });
  socket.on('data', (data: Buffer) => {
    for (const frame of decoder.push(data).frames) {
      messages.push(decodeMessage(frame.kind, frame.body));
    }
  });
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  return { socket, messages, closed, errored: () => errored };
}

const helloFrame = encodeMessageFrame({
  kind: 'hello',
  hello: { protocolVersion: 1, clusterName: '' },
});

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 5));
}

describe('client port', () => {
  it('hands a replica hello to the replica bus, not counting it as a client', async () => {
    const { port, recorded } = await openPort({ connectionCountMax: 1, budgetBytes: 1 << 20 });
    const replica = dial(port);
    replica.socket.write(encodeFrame(replicaFrameKind.hello, new Uint8Array(8)));
    await until(() => recorded.replicaSockets.length === 1);
    assert.equal(port.connectionCount, 0);
    const client = dial(port);
    client.socket.write(helloFrame);
    await until(() => client.messages.length === 1);
    assert.equal(client.messages[0]?.kind, 'hello_ok', 'a replica link takes no client slot');
    recorded.replicaSockets[0]?.destroy();
    client.socket.destroy();
    port.closeConnections();
    port.close();
  });

  it('answers a client past the connection limit with an error frame, then closes', async () => {
    const { port, recorded } = await openPort({ connectionCountMax: 1, budgetBytes: 1 << 20 });
    const first = dial(port);
    first.socket.write(helloFrame);
    await until(() => first.messages.length === 1);
    const second = dial(port);
    second.socket.write(helloFrame);
    await second.closed;
    const [answer] = second.messages;
    assert.ok(answer?.kind === 'error', JSON.stringify(second.messages));
    assert.equal(answer.error.scope.kind, 'connection');
    assert.equal(answer.error.code, errorCodes.backpressure);
    assert.match(answer.error.message, /max_connections/);
    assert.ok(!second.errored(), 'closed cleanly, not reset');
    assert.deepEqual(recorded.events, ['rejected:connection_limit']);
    first.socket.destroy();
    port.close();
  });

  it('counts a first frame still arriving against the budget and evicts past it', async () => {
    // Half a frame: the hog's 8 MiB first frame cannot complete before the budget is reached.
    const budgetBytes = constants.frameSizeBytesMax / 2;
    const { port, recorded } = await openPort({ connectionCountMax: 8, budgetBytes });
    const hog = dial(port);
    const header = Buffer.alloc(frameHeaderSizeBytes);
    header.writeUInt32LE(frameMagic, 0);
    header.writeUInt32LE(constants.frameSizeBytesMax, 4);
    hog.socket.write(header);
    const chunk = Buffer.alloc(256 * 1024, 1);
    await until(() => port.bufferedBytes > 0);
    for (let i = 0; i < 40 && !hog.socket.destroyed && hog.messages.length === 0; i++) {
      hog.socket.write(chunk);
      await new Promise((resolve) => setTimeout(resolve, 2));
      assert.ok(port.bufferedBytes <= budgetBytes, 'within the budget after every read');
    }
    await hog.closed;
    assert.deepEqual(recorded.events, ['closed:frame_buffer_budget']);
    const [answer] = hog.messages;
    assert.ok(answer?.kind === 'error');
    assert.equal(answer.error.code, errorCodes.backpressure);
    assert.equal(port.bufferedBytes, 0, 'the evicted connection holds nothing');
    port.close();
  });
});
