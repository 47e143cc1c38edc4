// Exactly-once appends through a fault-injecting proxy that loses the server's reply: the SDK
// must reconnect and resend the very same request (same client id, same request number), and
// the server must answer the resend from its client table instead of applying it again.

import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { toHex } from '../src/core/checksum.js';
import { decodeMessage, messageKind } from '../src/net/client_protocol.js';
import { Harness } from './harness.js';

interface SeenRequest {
  readonly connectionId: number;
  readonly clientId: string;
  readonly requestNumber: number;
  readonly body: string;
}

test('an append whose reply is lost is retried as the same request and applied once', async (t) => {
  // Proves exactly-once delivery end to end: a proxy between SDK and server drops the reply to
  // each of 5 appends and closes both sides right after the server sent it (so the append was
  // committed but the client cannot know). Each append still resolves, at the next offset; the
  // proxy saw each append request sent exactly twice, on two connections, with the same client
  // id, request number and body; and the stream holds each event exactly once, in order.
  const h = new Harness(t);
  const server = await h.startServer({ dataDir: await h.tempDir() });
  const [host = '', port = ''] = server.address.split(':');
  const proxy = await h.proxy({ target: { host, port: Number(port) } });
  const requests: SeenRequest[] = [];
  proxy.observe((frame) => {
    if (frame.direction !== 'to_server' || frame.kind !== messageKind.request) return;
    const message = decodeMessage(frame.kind, frame.body);
    if (message.kind !== 'request') return;
    const { clientId, requestNumber, body } = message.request;
    requests.push({
      connectionId: frame.connectionId,
      clientId,
      requestNumber,
      body: toHex(body),
    });
  });

  const db = await h.connect({ addresses: [proxy.address], requestTimeoutMs: 20_000 });
  const tenant = await db.createTenant('once');
  const stream = await db.createStream({ tenantId: tenant.tenantId, name: 'ledger' });
  const target = { tenantId: tenant.tenantId, streamId: stream.streamId };
  const appendCount = 5;
  for (let index = 0; index < appendCount; index++) {
    const seenBefore = requests.length;
    const acceptedBefore = proxy.acceptedCount;
    const rule = proxy.onFrame({
      direction: 'to_client',
      match: (frame) => frame.kind === messageKind.reply,
      action: 'drop_and_close',
    });
    const result = await db.append({ ...target, events: [`payment-${index}`] });
    assert.equal(rule.firedCount, 1, 'the reply was dropped');
    assert.equal(result.firstOffset, index);
    assert.equal(result.count, 1);
    assert.ok(proxy.acceptedCount > acceptedBefore, 'the client reconnected');
    const sent = requests.slice(seenBefore);
    assert.equal(sent.length, 2, `the append was sent twice: ${JSON.stringify(sent)}`);
    const [first, retry] = sent;
    assert.ok(first !== undefined && retry !== undefined);
    assert.notEqual(first.connectionId, retry.connectionId);
    assert.equal(retry.clientId, first.clientId);
    assert.equal(retry.requestNumber, first.requestNumber);
    assert.equal(retry.body, first.body);
  }

  const read = await db.read(target);
  assert.deepEqual(
    read.events.map((event) => [event.offset, Buffer.from(event.data).toString('utf8')]),
    Array.from({ length: appendCount }, (_, index) => [index, `payment-${index}`]),
  );
  const [summary] = await db.listStreams(tenant.tenantId);
  assert.equal(summary?.nextOffset, appendCount);
});
