// One TCP connection from the SDK to one node: it connects, says hello, frames and decodes
// messages, and hands each answer (reply, query result, error) to whoever waits for it.
//
// Waiting is by key: a request by (client id, request number), a query by query id. An answer
// nobody waits for (a late duplicate) is dropped. When the connection ends, every waiter gets a
// 'lost' outcome carrying the reason: KMB_ERR_CONNECTION_LOST for a plain drop, or the code of a
// connection-scoped error the node sent before closing (e.g. KMB_ERR_FRAME_MALFORMED). Outcomes
// are values, not exceptions, so the retry loop above decides what each one means.
//
// Frames sent in the same tick (a pipelined client sends many) leave in one socket write: the
// socket is corked at the first and uncorked on the next tick, as the node does for its replies.

import { Socket, createConnection } from 'node:net';
import { DecodeError } from '../core/binary.js';
import { assert } from '../core/assert.js';
import { KmbError, kmbError } from '../core/errors.js';
import { FrameDecoder } from '../net/frame.js';
import { TickCork } from '../net/tick_cork.js';
import { decodeMessage, encodeMessageFrame, protocolVersion } from '../net/client_protocol.js';
import type { ClientMessage, ErrorMessage, HelloOk } from '../net/client_protocol.js';
import type { ClientId, RequestNumber } from '../core/types.js';
import type { Address } from './address.js';
import { formatAddress } from './address.js';

/** A message that answers a request or a query. */
export type Answer = Extract<ClientMessage, { kind: 'reply' | 'error' | 'query_result' }>;

/** How a wait ended: an answer, the connection ending (with why), or the time running out. */
export type WaitOutcome =
  | { readonly kind: 'answer'; readonly answer: Answer }
  | { readonly kind: 'lost'; readonly error: KmbError }
  | { readonly kind: 'timeout' };

export interface ConnectionOptions {
  readonly address: Address;
  /** The cluster the client expects; empty accepts any. */
  readonly clusterName: string;
  /** How long the TCP connect plus the hello exchange may take. */
  readonly connectTimeoutMs: number;
}

interface Waiter {
  readonly settle: (outcome: WaitOutcome) => void;
}

/** Key of the waiter for a request's answer. */
export function requestKey(clientId: ClientId, requestNumber: RequestNumber): string {
  return `r:${clientId}:${requestNumber}`;
}

/** Key of the waiter for a query's answer. */
export function queryKey(queryId: number): string {
  return `q:${queryId}`;
}

function answerKey(message: Answer): string | null {
  if (message.kind === 'reply') {
    return requestKey(message.reply.clientId, message.reply.requestNumber);
  }
  if (message.kind === 'query_result') return queryKey(message.queryResult.queryId);
  if (message.kind === 'error') {
    const scope = message.error.scope;
    if (scope.kind === 'request') return requestKey(scope.clientId, scope.requestNumber);
    if (scope.kind === 'query') return queryKey(scope.queryId);
  }
  return null;
}

/** A KmbError from an error message, with the node it came from in the text. */
export function errorFromMessage(error: ErrorMessage, address: Address): KmbError {
  return new KmbError(error.code, `${error.message} (from ${formatAddress(address)})`);
}

export class Connection {
  private readonly decoder = new FrameDecoder();
  private readonly waiters = new Map<string, Waiter>();
  private endReason: KmbError | null = null;
  private helloWaiter: ((message: ClientMessage | KmbError) => void) | null = null;
  private hello: HelloOk | null = null;
  private readonly cork: TickCork;

  private constructor(
    private readonly socket: Socket,
    readonly address: Address,
  ) {
    this.cork = new TickCork(socket);
    socket.on('data', (data: Buffer) => this.onData(data));
    socket.on('error', (error: Error) => this.end(this.lostError(error)));
    socket.on('close', () => this.end(this.lostError(null)));
  }

  /** Connects and completes the hello exchange, or rejects with a KmbError. */
  static async open(options: ConnectionOptions): Promise<Connection> {
    const { address } = options;
    const socket = createConnection({ host: address.host, port: address.port });
    socket.setNoDelay(true);
    const connection = new Connection(socket, address);
    const timer = setTimeout(() => {
      const ms = options.connectTimeoutMs;
      connection.end(kmbError('timeout', `no hello from ${formatAddress(address)} in ${ms} ms`));
    }, options.connectTimeoutMs);
    try {
      const first = await connection.sayHello(options.clusterName);
      connection.hello = connection.checkHello(first, options.clusterName);
      return connection;
    } catch (error) {
      connection.close();
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** What the node said in hello_ok: its id, the view and the leader it knows of. */
  get helloOk(): HelloOk {
    assert(this.hello !== null, 'helloOk read before the handshake finished');
    return this.hello;
  }

  get isOpen(): boolean {
    return this.endReason === null;
  }

  /**
   * Sends a message and waits for the answer with the given key, at most timeoutMs.
   * Only one wait per key at a time.
   */
  exchange(key: string, message: ClientMessage, timeoutMs: number): Promise<WaitOutcome> {
    if (this.endReason !== null) return Promise.resolve({ kind: 'lost', error: this.endReason });
    assert(!this.waiters.has(key), `a wait for ${key} is already under way`);
    return new Promise((resolve) => {
      const timer = setTimeout(() => settle({ kind: 'timeout' }), Math.max(0, timeoutMs));
      const settle = (outcome: WaitOutcome): void => {
        clearTimeout(timer);
        if (this.waiters.get(key) === waiter) this.waiters.delete(key);
        resolve(outcome);
      };
      const waiter: Waiter = { settle };
      this.waiters.set(key, waiter);
      this.send(message);
    });
  }

  /** Closes the connection; waiters get KMB_ERR_CONNECTION_LOST. */
  close(): void {
    this.end(kmbError('connection_lost', `connection to ${formatAddress(this.address)} closed`));
  }

  private send(message: ClientMessage): void {
    this.cork.hold();
    this.socket.write(encodeMessageFrame(message));
  }

  private sayHello(clusterName: string): Promise<ClientMessage> {
    return new Promise((resolve, reject) => {
      if (this.endReason !== null) {
        reject(this.endReason);
        return;
      }
      this.helloWaiter = (first) => (first instanceof KmbError ? reject(first) : resolve(first));
      this.socket.once('connect', () => {
        this.send({ kind: 'hello', hello: { protocolVersion, clusterName } });
      });
    });
  }

  private checkHello(first: ClientMessage, clusterName: string): HelloOk {
    const where = formatAddress(this.address);
    if (first.kind === 'error') throw errorFromMessage(first.error, this.address);
    if (first.kind !== 'hello_ok') {
      throw kmbError('frame_malformed', `${where} answered hello with ${first.kind}`);
    }
    const hello = first.helloOk;
    if (hello.protocolVersion !== protocolVersion) {
      const detail = `speaks protocol ${hello.protocolVersion}, this client ${protocolVersion}`;
      throw kmbError('protocol_version', `${where} ${detail}`);
    }
    if (clusterName !== '' && hello.clusterName !== clusterName) {
      const detail = `is in cluster ${JSON.stringify(hello.clusterName)}`;
      throw kmbError('cluster_mismatch', `${where} ${detail}, not ${JSON.stringify(clusterName)}`);
    }
    return hello;
  }

  private onData(data: Buffer): void {
    const { frames, error } = this.decoder.push(data);
    for (const frame of frames) {
      let message: ClientMessage;
      try {
        message = decodeMessage(frame.kind, frame.body);
      } catch (cause) {
        if (!(cause instanceof DecodeError)) throw cause;
        const where = formatAddress(this.address);
        this.end(kmbError('frame_malformed', `bad message from ${where}: ${cause.message}`));
        return;
      }
      this.dispatch(message);
      if (this.endReason !== null) return;
    }
    if (error !== null) {
      const where = formatAddress(this.address);
      this.end(new KmbError(error.code, `bad frame from ${where}: ${error.message}`));
    }
  }

  private dispatch(message: ClientMessage): void {
    if (this.helloWaiter !== null) {
      const waiter = this.helloWaiter;
      this.helloWaiter = null;
      waiter(message);
      return;
    }
    if (message.kind === 'error' && message.error.scope.kind === 'connection') {
      this.end(errorFromMessage(message.error, this.address));
      return;
    }
    if (message.kind !== 'reply' && message.kind !== 'query_result' && message.kind !== 'error') {
      return;
    }
    const key = answerKey(message);
    if (key === null) return;
    this.waiters.get(key)?.settle({ kind: 'answer', answer: message });
  }

  private lostError(cause: Error | null): KmbError {
    const where = formatAddress(this.address);
    const detail = cause === null ? 'connection closed' : cause.message;
    return kmbError('connection_lost', `${where}: ${detail}`, cause ?? undefined);
  }

  /** Ends the connection once; the first reason wins and every waiter learns it. */
  private end(reason: KmbError): void {
    if (this.endReason !== null) return;
    this.endReason = reason;
    this.socket.destroy();
    if (this.helloWaiter !== null) {
      const waiter = this.helloWaiter;
      this.helloWaiter = null;
      waiter(reason);
    }
    const waiters = [...this.waiters.values()];
    this.waiters.clear();
    for (const waiter of waiters) waiter.settle({ kind: 'lost', error: reason });
  }
}
