// The one executor for committed requests: given the client table (replicated session state)
// and a state machine, it decides whether a committed request applies, applies it, and records
// its reply. The replica (execute.ts), `kimberlite-admin verify`'s replay, the audit export and
// the fake server all execute through it, so they cannot disagree on sessions, duplicates or
// eviction: an offline tool replaying a journal with the client table bound the replica ran
// with reaches the same state and the same outcome for every request.
//
// The rules: a `register` creates a session unless the client already has one (then nothing
// happens); registering past the table's bound evicts the session that committed least
// recently (client_table.ts). A command applies only when its client has a session and it is
// that session's next request number; anything else is skipped, identically everywhere, so that
// a log written by a faulty primary cannot split replicas. Under the no_duplicate_detection
// canary a duplicate is applied again (without moving the session).
//
// Pure: no I/O, no time; the outcome depends only on the table, the request and the prepare's
// op and timestamp.

import { assert } from '../core/assert.js';
import type { ClientId, Op, TimestampUs } from '../core/types.js';
import type { Request } from './batch.js';
import type { ClientTable } from './client_table.js';
import type { Reply } from './message.js';
import type { StateMachine } from './replica_options.js';

/** Where in the log a request committed. */
export interface RequestSite {
  readonly op: Op;
  readonly timestampUs: TimestampUs;
  /** The request's position in its prepare's batch. */
  readonly requestIndex: number;
}

export type SkipReason = 'registered_already' | 'no_session' | 'duplicate' | 'gap';

export type RequestOutcome<Output> =
  | { readonly kind: 'registered'; readonly reply: Reply; readonly evicted: ClientId | null }
  | { readonly kind: 'applied'; readonly reply: Reply; readonly output: Output }
  | { readonly kind: 'skipped'; readonly reason: SkipReason };

export interface ExecuteOptions {
  /** The no_duplicate_detection canary: a duplicate applies again. Production never sets it. */
  readonly applyDuplicates?: boolean;
}

/** Executes one committed request against the client table and the state machine. */
export function executeRequest<Output>(
  table: ClientTable,
  stateMachine: StateMachine<Output>,
  site: RequestSite,
  request: Request,
  options: ExecuteOptions = {},
): RequestOutcome<Output> {
  const { op, timestampUs, requestIndex } = site;
  const { clientId, requestNumber } = request;
  assert(requestIndex >= 0, 'a request index is a batch position');
  if (request.operation === 'register') {
    if (table.get(clientId) !== undefined) return { kind: 'skipped', reason: 'registered_already' };
    const reply: Reply = { clientId, requestNumber, op, timestampUs, result: new Uint8Array(0) };
    const evicted = table.register(clientId, reply);
    return { kind: 'registered', reply, evicted };
  }
  const session = table.get(clientId);
  if (session === undefined) return { kind: 'skipped', reason: 'no_session' };
  const next = requestNumber === session.requestNumber + 1;
  const duplicate = requestNumber <= session.requestNumber;
  if (!next && !(duplicate && options.applyDuplicates === true)) {
    return { kind: 'skipped', reason: duplicate ? 'duplicate' : 'gap' };
  }
  const applied = stateMachine.apply(request.body, { op, timestampUs, clientId, requestIndex });
  const reply: Reply = { clientId, requestNumber, op, timestampUs, result: applied.result };
  if (next) table.update(reply);
  assert(table.get(clientId) !== undefined, 'an applied request keeps its session');
  return { kind: 'applied', reply, output: applied.output };
}
