// A minimal client that speaks the wire protocol directly, for tests that need exact control
// over frames, request numbers and pipelining (the SDK hides these on purpose). It is not a
// product: no retries, no reconnection; one TCP connection, many sessions on it.

import { connect as netConnect } from 'node:net';
import type { Socket } from 'node:net';
import { asRequestNumber } from '../core/types.js';
import type { ClientId } from '../core/types.js';
import { encodeCommand } from '../kernel/kernel.js';
import type { Command } from '../kernel/kernel.js';
import { FrameDecoder, encodeFrame } from '../net/frame.js';
import { TickCork } from '../net/tick_cork.js';
import {
  decodeMessage,
  encodeMessage,
  messageKind,
  protocolVersion,
} from '../net/client_protocol.js';
import type { ClientMessage, Query, QueryResult } from '../net/client_protocol.js';

export { newClientId } from '../client/client_id.js';

type Answer = Extract<ClientMessage, { kind: 'reply' | 'error' | 'query_result' }>;

export class RawClient {
  readonly messages: ClientMessage[] = [];
  private readonly waiters: {
    match: (m: ClientMessage) => boolean;
    resolve: (m: ClientMessage) => void;
  }[] = [];
  private readonly decoder = new FrameDecoder();
  private queryIdNext = 1;
  /** Requests and queries waiting for their answer, by answerKey: matched in O(1). */
  private readonly answers = new Map<string, (answer: Answer) => void>();
  closed = false;
  private readonly cork: TickCork;

  private constructor(readonly socket: Socket) {
    this.cork = new TickCork(socket);
    socket.on('data', (data: Buffer) => {
      for (const frame of this.decoder.push(data).frames)
        this.deliver(decodeMessage(frame.kind, frame.body));
    });
    socket.on('close', () => {
      this.closed = true;
    });
    socket.on('error', () => undefined);
  }

  static async connect(address: string, hello = true): Promise<RawClient> {
    const [host, port] = [
      address.slice(0, address.lastIndexOf(':')),
      Number(address.slice(address.lastIndexOf(':') + 1)),
    ];
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = netConnect({ host: host.replace(/^\[|\]$/g, ''), port }, () => resolve(s));
      s.once('error', reject);
    });
    socket.setNoDelay(true); // As the SDK: no Nagle delay on small requests.
    const client = new RawClient(socket);
    if (hello) {
      client.send({ kind: 'hello', hello: { protocolVersion, clusterName: '' } });
      await client.wait((m) => m.kind === 'hello_ok' || m.kind === 'error');
    }
    return client;
  }

  private deliver(message: ClientMessage): void {
    const key = answerKey(message);
    const pending = key === null ? undefined : this.answers.get(key);
    if (key !== null && pending !== undefined) {
      this.answers.delete(key);
      pending(message as Answer);
      return;
    }
    this.messages.push(message);
    const index = this.waiters.findIndex((w) => w.match(message));
    if (index >= 0) this.waiters.splice(index, 1)[0]?.resolve(message);
  }

  /** Frames written in one tick go out in one socket write (cork now, uncork next tick). */
  send(message: ClientMessage): void {
    this.cork.hold();
    this.socket.write(encodeFrame(messageKind[message.kind], encodeMessage(message)));
  }

  writeRaw(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  wait(match: (m: ClientMessage) => boolean): Promise<ClientMessage> {
    const seen = this.messages.find(match);
    if (seen !== undefined) {
      this.messages.splice(this.messages.indexOf(seen), 1);
      return Promise.resolve(seen);
    }
    return new Promise((resolve) =>
      this.waiters.push({
        match,
        resolve: (m) => {
          this.messages.splice(this.messages.indexOf(m), 1);
          resolve(m);
        },
      }),
    );
  }

  /** Sends one request and waits for its reply or error. */
  async request(
    clientId: ClientId,
    requestNumber: number,
    command: Command | null,
  ): Promise<Answer> {
    return this.requestEncoded(
      clientId,
      requestNumber,
      command === null ? null : encodeCommand(command),
    );
  }

  /**
   * As request(), with the command already encoded (null registers the session): a load
   * generator sending the same command many times encodes it once, as wrk sends one body.
   */
  async requestEncoded(
    clientId: ClientId,
    requestNumber: number,
    body: Uint8Array | null,
  ): Promise<Answer> {
    const answer = new Promise<Answer>((resolve) => {
      this.answers.set(`r:${clientId}:${requestNumber}`, resolve);
    });
    this.send({
      kind: 'request',
      request: {
        clientId,
        requestNumber: asRequestNumber(requestNumber),
        operation: body === null ? 'register' : 'command',
        body: body ?? new Uint8Array(),
      },
    });
    return answer;
  }

  async query(query: Query): Promise<QueryResult> {
    const queryId = this.queryIdNext++;
    const pending = new Promise<Answer>((resolve) => this.answers.set(`q:${queryId}`, resolve));
    this.send({ kind: 'query', query: { queryId, query } });
    const answer = await pending;
    if (answer.kind === 'query_result') return answer.queryResult.result;
    throw new Error(
      answer.kind === 'error' ? `${answer.error.code}: ${answer.error.message}` : 'unexpected',
    );
  }

  close(): void {
    this.socket.destroy();
  }
}

/** The key an answer is matched by: requests by (client, number), queries by id. */
function answerKey(message: ClientMessage): string | null {
  if (message.kind === 'reply') return `r:${message.reply.clientId}:${message.reply.requestNumber}`;
  if (message.kind === 'query_result') return `q:${message.queryResult.queryId}`;
  if (message.kind !== 'error') return null;
  const scope = message.error.scope;
  if (scope.kind === 'request') return `r:${scope.clientId}:${scope.requestNumber}`;
  if (scope.kind === 'query') return `q:${scope.queryId}`;
  return null;
}
