// Proves the waits of one SDK connection share one timer correctly, against a fake node that
// says hello and then answers only the requests it is told to: each unanswered wait ends with
// 'timeout' no earlier than its own deadline, a shorter wait made after a longer one still ends
// first, an answered wait ends with its answer and never times out, and closing the connection
// ends the waits left with KMB_ERR_CONNECTION_LOST and leaves no timer behind (the process
// would otherwise be held open until the last deadline).

import { strict as assert } from 'node:assert';
import { createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { describe, it } from 'node:test';
import { asClientId, asOp, asRequestNumber, asTimestampUs, asView } from '../core/types.js';
import type { ClientId } from '../core/types.js';
import { FrameDecoder } from '../net/frame.js';
import { decodeMessage, encodeMessageFrame, protocolVersion } from '../net/client_protocol.js';
import type { ClientMessage, HelloOk } from '../net/client_protocol.js';
import { Connection, requestKey } from './connection.js';

/** A node that completes the hello and answers requests whose number is in `answer`. */
async function fakeNode(answer: ReadonlySet<number>): Promise<{ server: Server; port: number }> {
  const server = createServer((socket: Socket) => {
    const decoder = new FrameDecoder();
    socket.on('data', (data: Buffer) => {
      for (const frame of decoder.push(data).frames) {
        const message = decodeMessage(frame.kind, frame.body);
        if (message.kind === 'hello') {
          const helloOk: HelloOk = {
            protocolVersion,
            clusterName: message.hello.clusterName,
            nodeId: 0,
            replicaCount: 1,
            view: asView(0),
            leader: 0,
          };
          socket.write(encodeMessageFrame({ kind: 'hello_ok', helloOk }));
        } else if (message.kind === 'request' && answer.has(message.request.requestNumber)) {
          const { clientId, requestNumber } = message.request;
          const reply = {
            clientId,
            requestNumber,
            op: asOp(1),
            timestampUs: asTimestampUs(1),
            result: new Uint8Array(0),
          };
          socket.write(encodeMessageFrame({ kind: 'reply', reply }));
        }
      }
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

const clientId: ClientId = asClientId('ab'.repeat(16));

function request(requestNumber: number): ClientMessage {
  return {
    kind: 'request',
    request: {
      clientId,
      requestNumber: asRequestNumber(requestNumber),
      operation: 'command',
      body: new Uint8Array([1]),
    },
  };
}

describe('Connection waits', () => {
  it('times each wait out at its own deadline with one shared timer', async () => {
    const { server, port } = await fakeNode(new Set([3]));
    const connection = await Connection.open({
      address: { host: '127.0.0.1', port },
      clusterName: '',
      connectTimeoutMs: 2000,
    });
    try {
      const started = performance.now();
      const endedAt = (outcome: Promise<{ kind: string }>) =>
        outcome.then((o) => ({ kind: o.kind, ms: performance.now() - started }));
      const slow = endedAt(
        connection.exchange(requestKey(clientId, asRequestNumber(1)), request(1), 400),
      );
      const fast = endedAt(
        connection.exchange(requestKey(clientId, asRequestNumber(2)), request(2), 60),
      );
      const answered = endedAt(
        connection.exchange(requestKey(clientId, asRequestNumber(3)), request(3), 100),
      );
      const [slowEnd, fastEnd, answeredEnd] = await Promise.all([slow, fast, answered]);
      assert.equal(answeredEnd.kind, 'answer');
      assert.equal(fastEnd.kind, 'timeout');
      assert.equal(slowEnd.kind, 'timeout');
      assert.ok(fastEnd.ms >= 59, `the 60 ms wait ended at ${fastEnd.ms} ms`);
      assert.ok(fastEnd.ms < 300, `the 60 ms wait was not held to the 400 ms one`);
      assert.ok(slowEnd.ms >= 399, `the 400 ms wait ended at ${slowEnd.ms} ms`);
    } finally {
      connection.close();
      server.close();
    }
  });

  it('ends the waits left with connection_lost on close, leaving no timer', async () => {
    const { server, port } = await fakeNode(new Set());
    const connection = await Connection.open({
      address: { host: '127.0.0.1', port },
      clusterName: '',
      connectTimeoutMs: 2000,
    });
    const wait = connection.exchange(requestKey(clientId, asRequestNumber(1)), request(1), 60_000);
    connection.close();
    const outcome = await wait;
    assert.equal(outcome.kind, 'lost');
    assert.equal(outcome.kind === 'lost' ? outcome.error.code : '', 'KMB_ERR_CONNECTION_LOST');
    server.close();
    // No timer of the connection is left to hold the process: only the test runner's handles.
    const timers = (process as unknown as { getActiveResourcesInfo(): string[] })
      .getActiveResourcesInfo()
      .filter((kind) => kind === 'Timeout');
    assert.deepEqual(timers, []);
  });
});
