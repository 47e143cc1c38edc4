// The retry loop shared by requests and queries: send a message and wait for its answer; when
// the connection drops or the answer is a retryable error, get a connection again and resend
// the very same message, until it is answered or the deadline passes.
//
// Resending is safe because of what is resent. A request keeps its client id and request
// number, so a node that already committed it answers with the cached reply instead of applying
// it twice (exactly-once). A query only reads. Whether an error is retryable is a property of
// its code (isRetryableCode), never of its text. KMB_ERR_NOT_LEADER also moves the next attempt
// to the hinted leader; KMB_ERR_NOT_READY and KMB_ERR_SHUTTING_DOWN move it to another replica
// (a leader that lost its quorum says NOT_READY until it learns of the new view, which may be
// never while it is cut off). A node that keeps a message for attemptTimeoutMs without answering
// is given up on the same way, and marked unresponsive (cluster.ts): an old leader in a minority
// partition holds the requests it had in flight, and a stopped one holds everything; waiting for
// it would hold the client there too, and so would following the hints of backups still in its
// view back to it. When time runs out the KMB_ERR_TIMEOUT message says what this call met at
// each address (call_log.ts), never what earlier calls met.

import { assert } from '../core/assert.js';
import { KmbError, errorCodes } from '../core/errors.js';
import type { ClientMessage } from '../net/client_protocol.js';
import { backoffDelayMs } from './backoff.js';
import type { BackoffPolicy } from './backoff.js';
import { CallLog } from './call_log.js';
import type { Cluster } from './cluster.js';
import { errorFromMessage } from './connection.js';
import type { Answer, Connection } from './connection.js';

/** One message to deliver and the key its answer comes back under. */
export interface Exchange {
  /**
   * What this is, for error messages: "append (request 3 of client …)", "query list_tenants";
   * a function when building the text would cost every call something only a failure reads.
   */
  readonly what: string | (() => string);
  readonly key: string;
  readonly message: ClientMessage;
}

export interface RetryContext {
  readonly cluster: Cluster;
  readonly backoff: BackoffPolicy;
  readonly random: () => number;
  /** The whole budget, for the timeout message. */
  readonly timeoutMs: number;
  /** How long one node may hold the message unanswered before it is resent elsewhere. */
  readonly attemptTimeoutMs: number;
}

/** The text of an Exchange's `what`, built now if it was deferred. */
export function whatText(what: string | (() => string)): string {
  return typeof what === 'string' ? what : what();
}

/** A successful answer: a reply to a request or the result of a query. */
export type Success = Exclude<Answer, { kind: 'error' }>;

/**
 * Delivers the exchange and returns its successful answer. Throws the KmbError of a
 * non-retryable answer at once, and KMB_ERR_TIMEOUT when deadlineMs (a Date.now() value) passes,
 * listing what this call (and only this call) met at each address.
 */
export async function exchangeWithRetry(
  context: RetryContext,
  exchange: Exchange,
  deadlineMs: number,
): Promise<Success> {
  const { cluster } = context;
  // Made at the first problem: a call answered at once allocates nothing for it.
  let log: CallLog | null = null;
  for (let attempt = 0; ; attempt++) {
    // The usual case, an open connection, without a promise and its turn of the microtask queue.
    const connection =
      cluster.ready ?? (await cluster.connection(deadlineMs, (log ??= new CallLog())));
    const remainingMs = deadlineMs - Date.now();
    if (connection === null || remainingMs <= 0) throw timeoutError(context, exchange, log);
    const attemptMs = Math.min(remainingMs, context.attemptTimeoutMs);
    const outcome = await connection.exchange(exchange.key, exchange.message, attemptMs);
    if (outcome.kind === 'timeout') {
      (log ??= new CallLog()).note(connection.address, `no answer in ${attemptMs} ms`);
      if (deadlineMs - Date.now() <= 0) throw timeoutError(context, exchange, log);
      cluster.unanswered(connection);
      continue;
    }
    if (outcome.kind === 'answer') cluster.answered(connection);
    if (outcome.kind === 'answer' && outcome.answer.kind !== 'error') return outcome.answer;
    const failure = failureOf(cluster, connection, outcome);
    if (!failure.error.retryable) throw failure.error;
    (log ??= new CallLog()).note(connection.address, failure.problem);
    const delayMs = backoffDelayMs(attempt, context.backoff, context.random);
    await cluster.sleep(Math.min(delayMs, Math.max(0, deadlineMs - Date.now())));
  }
}

/**
 * The KmbError an unsuccessful outcome stands for, after acting on any leader hint, and the
 * problem to log for it (the node's own words, and whether a hint was not followed).
 */
function failureOf(
  cluster: Cluster,
  connection: Connection,
  outcome: { kind: 'lost'; error: KmbError } | { kind: 'answer'; answer: Answer },
): { error: KmbError; problem: string } {
  if (outcome.kind === 'lost') {
    cluster.discard(connection);
    return { error: outcome.error, problem: `${outcome.error.code}: ${outcome.error.message}` };
  }
  const answer = outcome.answer;
  assert(answer.kind === 'error', 'a successful answer is no failure');
  const { error } = answer;
  let problem = `${error.code}: ${error.message}`;
  if (error.code === errorCodes.not_leader && !cluster.redirect(connection, error.leaderHint)) {
    problem += ' (not followed: that replica did not answer)';
  }
  if (error.code === errorCodes.not_ready || error.code === errorCodes.shutting_down) {
    cluster.moveOn(connection);
  }
  return { error: errorFromMessage(error, connection.address), problem };
}

function timeoutError(context: RetryContext, exchange: Exchange, log: CallLog | null): KmbError {
  const tried = (log ?? new CallLog()).describe(context.cluster.addresses);
  const unknown =
    exchange.message.kind === 'request' ? '; it may or may not have been applied' : '';
  const what = `${whatText(exchange.what)} not answered within ${context.timeoutMs} ms`;
  return new KmbError(errorCodes.timeout, `${what}${unknown}; tried ${tried}`);
}
