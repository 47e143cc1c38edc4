// A client session: the SDK side of exactly-once writes. The session registers itself (request
// 0, operation `register`) the first time it is needed, then numbers its commands 1, 2, 3... and
// keeps exactly one in flight: commands wait in a bounded FIFO queue and each is sent only after
// the one before it was answered. A command is retried with its same client id and request
// number (retry.ts), so the cluster applies it at most once.
//
// When a command fails after its number was spent (time ran out, or the cluster said the
// session is evicted, stale or out of order), the session cannot know what the cluster holds
// for that number, so it is abandoned: the next command registers a fresh session with a new
// random client id. Reusing the number for another command could be answered with the cached
// reply of the first, which would be wrong.

import { assert } from '../core/assert.js';
import { DecodeError } from '../core/binary.js';
import { KmbError, kmbError } from '../core/errors.js';
import { asRequestNumber } from '../core/types.js';
import type { ClientId, Op, TimestampUs } from '../core/types.js';
import type { TraceParent } from '../core/trace_parent.js';
import { decodeResult } from '../kernel/kernel.js';
import type { CommandResult } from '../kernel/kernel.js';
import type { RequestMessage } from '../net/client_protocol.js';
import { newClientId } from './client_id.js';
import { requestKey } from './connection.js';
import { exchangeWithRetry, whatText } from './retry.js';
import type { RetryContext } from './retry.js';

/** The committed, successful result of a command. */
export type OkResult = Exclude<CommandResult, { status: 'error' }>;

export interface SessionOptions {
  readonly context: RetryContext;
  readonly requestTimeoutMs: number;
  /** Commands allowed to wait behind the one in flight. */
  readonly requestQueueCountMax: number;
}

interface Committed {
  readonly op: Op;
  readonly timestampUs: TimestampUs;
  readonly result: Uint8Array;
}

export class Session {
  private clientIdCurrent: ClientId | null = null;
  private sessionOp: Op | null = null;
  private requestNumberNext = 1;
  private tail: Promise<unknown> = Promise.resolve();
  private queuedCount = 0;

  constructor(private readonly options: SessionOptions) {
    assert(options.requestQueueCountMax > 0, 'the request queue needs room');
  }

  /** The registered session's client id, or null before registration or after abandoning. */
  get clientId(): ClientId | null {
    return this.clientIdCurrent;
  }

  /** The op that committed the registration (the session id), or null. */
  get sessionId(): Op | null {
    return this.sessionOp;
  }

  /**
   * Queues an encoded command; resolves with its committed result, or rejects with a KmbError:
   * the kernel's code when the command was committed but rejected, else the delivery failure.
   */
  submit(what: string, body: Uint8Array, traceParent?: TraceParent): Promise<OkResult> {
    if (this.queuedCount >= this.options.requestQueueCountMax) {
      const max = this.options.requestQueueCountMax;
      return Promise.reject(kmbError('backpressure', `${max} commands already wait to be sent`));
    }
    const deadlineMs = Date.now() + this.options.requestTimeoutMs;
    // With nothing queued or in flight here (the usual case under a pool), the command starts
    // now; otherwise it waits for the one before it. Either way the next waits for this one.
    const run =
      this.queuedCount === 0
        ? this.run(what, body, deadlineMs, traceParent)
        : this.tail.then(() => this.run(what, body, deadlineMs, traceParent));
    this.queuedCount += 1;
    this.tail = run.then(this.settled, this.settled);
    return run;
  }

  /** A queued command settled (its run's promise: fulfilled or rejected). */
  private readonly settled = (): void => {
    this.queuedCount -= 1;
  };

  private async run(
    what: string,
    body: Uint8Array,
    deadlineMs: number,
    traceParent: TraceParent | undefined,
  ): Promise<OkResult> {
    if (Date.now() >= deadlineMs) {
      const ms = this.options.requestTimeoutMs;
      throw kmbError('timeout', `${what} waited in the queue for ${ms} ms and was not sent`);
    }
    const clientId = this.clientIdCurrent ?? (await this.register(deadlineMs, traceParent));
    const requestNumber = asRequestNumber(this.requestNumberNext);
    this.requestNumberNext += 1;
    let committed: Committed;
    try {
      const label = (): string => `${what} (request ${requestNumber} of client ${clientId})`;
      const request = { clientId, requestNumber, operation: 'command' as const, body };
      committed = await this.send(label, withTrace(request, traceParent), deadlineMs);
    } catch (error) {
      this.abandon();
      throw error;
    }
    return okOrThrow(committed.result);
  }

  /** Registers a session unless one is registered; returns its client id. */
  private async register(
    deadlineMs: number,
    traceParent: TraceParent | undefined,
  ): Promise<ClientId> {
    if (this.clientIdCurrent !== null) return this.clientIdCurrent;
    const clientId = newClientId();
    const requestNumber = asRequestNumber(0);
    const what = `register (client ${clientId})`;
    const request = { clientId, requestNumber, operation: 'register' as const, body: empty };
    const reply = await this.send(what, withTrace(request, traceParent), deadlineMs);
    this.clientIdCurrent = clientId;
    this.sessionOp = reply.op;
    this.requestNumberNext = 1;
    return clientId;
  }

  private async send(
    what: string | (() => string),
    request: RequestMessage,
    deadlineMs: number,
  ): Promise<Committed> {
    const message = { kind: 'request' as const, request };
    const key = requestKey(request.clientId, request.requestNumber);
    const answer = await exchangeWithRetry(
      this.options.context,
      { what, key, message },
      deadlineMs,
    );
    if (answer.kind !== 'reply') {
      throw kmbError('frame_malformed', `${whatText(what)} was answered with a ${answer.kind}`);
    }
    return answer.reply;
  }

  private abandon(): void {
    this.clientIdCurrent = null;
    this.sessionOp = null;
    this.requestNumberNext = 1;
  }
}

const empty = new Uint8Array(0);

/** The request with the caller's trace context, when there is one. */
function withTrace(
  request: Omit<RequestMessage, 'traceParent'>,
  traceParent: TraceParent | undefined,
): RequestMessage {
  return traceParent === undefined ? request : { ...request, traceParent };
}

/** Decodes a committed result: ok results are returned, kernel errors thrown with their code. */
function okOrThrow(bytes: Uint8Array): OkResult {
  let result: CommandResult;
  try {
    result = decodeResult(bytes);
  } catch (error) {
    if (!(error instanceof DecodeError)) throw error;
    throw kmbError('frame_malformed', `undecodable command result: ${error.message}`, error);
  }
  if (result.status === 'error') throw new KmbError(result.code, result.message);
  return result;
}
