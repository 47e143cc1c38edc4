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
  /** Aborting it gives up the attempt at once (the client was closed). */
  readonly signal?: AbortSignal;
}

interface Waiter {
  readonly settle: (outcome: WaitOutcome) => void;
  /** performance.now() at which the wait ends with a timeout. */
  readonly deadlineMs: number;
}

/** A deadline this close (ms) counts as passed: timers fire on the event loop's cached clock. */
const deadlineSlackMs = 1;

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
  /**
   * One timer for every wait on this connection, due at the earliest deadline (a pipelining
   * client has hundreds of waits; a timer each cost CPU to set and clear, and an object:
   * docs/performance.md, "Figures behind the code").
   */
  private timer: NodeJS.Timeout | null = null;
  private timerDeadlineMs = Number.POSITIVE_INFINITY;

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
    const signal = options.signal;
    const onAbort = (): void => connection.end(kmbError('connection_lost', 'the client is closed'));
    if (signal?.aborted === true) onAbort();
    signal?.addEventListener('abort', onAbort);
    try {
      const first = await connection.sayHello(options.clusterName);
      connection.hello = connection.checkHello(first, options.clusterName);
      return connection;
    } catch (error) {
      connection.close();
      throw error;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
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
      const waiter: Waiter = {
        deadlineMs: performance.now() + Math.max(0, timeoutMs),
        settle: (outcome: WaitOutcome): void => {
          if (this.waiters.get(key) === waiter) this.waiters.delete(key);
          if (this.waiters.size === 0) this.disarm();
          resolve(outcome);
        },
      };
      this.waiters.set(key, waiter);
      this.arm(waiter.deadlineMs);
      this.send(message);
    });
  }

  /** Makes the timer due no later than deadlineMs. */
  private arm(deadlineMs: number): void {
    if (this.timer !== null && this.timerDeadlineMs <= deadlineMs) return;
    this.disarm();
    this.timerDeadlineMs = deadlineMs;
    const delayMs = Math.max(0, deadlineMs - performance.now());
    this.timer = setTimeout(() => this.expire(), delayMs);
  }

  private disarm(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.timerDeadlineMs = Number.POSITIVE_INFINITY;
  }

  /** Ends the waits whose deadline passed with 'timeout'; re-arms for the earliest left. */
  private expire(): void {
    this.timer = null;
    this.timerDeadlineMs = Number.POSITIVE_INFINITY;
    const nowMs = performance.now() + deadlineSlackMs;
    let nextMs = Number.POSITIVE_INFINITY;
    for (const waiter of this.waiters.values()) {
      if (waiter.deadlineMs <= nowMs) waiter.settle({ kind: 'timeout' });
      else nextMs = Math.min(nextMs, waiter.deadlineMs);
    }
    if (nextMs < Number.POSITIVE_INFINITY) this.arm(nextMs);
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
    this.disarm();
    for (const waiter of waiters) waiter.settle({ kind: 'lost', error: reason });
  }
}
