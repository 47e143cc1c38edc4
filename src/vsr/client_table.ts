// The client table: replicated session state (DESIGN.md §3). A session is created by a committed
// `register` request; afterwards the table keeps, per client, the number of its latest committed
// request and the reply to it, so that a retried duplicate gets the same reply and is never
// applied twice (exactly-once). It changes only when a prepare commits, so every replica's table
// is identical at the same commit number. It is bounded: registering past the bound evicts the
// session that committed least recently.

import { assert } from '../core/assert.js';
import type { ClientId, Op, RequestNumber } from '../core/types.js';
import type { Reply } from './message.js';

export interface Session {
  readonly clientId: ClientId;
  /** The op that committed the register request: the session's id. */
  readonly sessionOp: Op;
  requestNumber: RequestNumber;
  reply: Reply;
  /** The op of the latest commit for this client; eviction picks the smallest. */
  lastCommitOp: Op;
}

export class ClientTable {
  private readonly sessions = new Map<ClientId, Session>();

  constructor(readonly sessionCountMax: number) {
    assert(sessionCountMax > 0, 'client table must hold at least one session');
  }

  get size(): number {
    return this.sessions.size;
  }

  get(clientId: ClientId): Session | undefined {
    return this.sessions.get(clientId);
  }

  /**
   * Records a committed register. Returns the client evicted to make room, if any. The choice is
   * deterministic: the smallest lastCommitOp, and among sessions whose latest commits share an op
   * the one registered first (the map's insertion order, the same on every replica and in every
   * offline replay, since all of them build the table through executor.ts in log order).
   */
  register(clientId: ClientId, reply: Reply): ClientId | null {
    assert(!this.sessions.has(clientId), 'register of an existing session');
    assert(reply.requestNumber === 0, 'register is request number 0');
    let evicted: ClientId | null = null;
    if (this.sessions.size >= this.sessionCountMax) {
      evicted = this.oldest();
      this.sessions.delete(evicted);
    }
    this.sessions.set(clientId, {
      clientId,
      sessionOp: reply.op,
      requestNumber: reply.requestNumber,
      reply,
      lastCommitOp: reply.op,
    });
    assert(this.sessions.size <= this.sessionCountMax, 'client table over its bound');
    return evicted;
  }

  /** Records the committed reply to a session's next request. */
  update(reply: Reply): void {
    const session = this.sessions.get(reply.clientId);
    assert(session !== undefined, 'update of an unknown session');
    assert(reply.requestNumber === session.requestNumber + 1, 'requests commit in order');
    // A register and the session's first commands may share one prepare: equal ops are fine.
    assert(reply.op >= session.lastCommitOp, 'commits never move back');
    session.requestNumber = reply.requestNumber;
    session.reply = reply;
    session.lastCommitOp = reply.op;
  }

  private oldest(): ClientId {
    let oldest: Session | null = null;
    for (const session of this.sessions.values()) {
      if (oldest === null || session.lastCommitOp < oldest.lastCommitOp) oldest = session;
    }
    assert(oldest !== null, 'oldest of an empty table');
    return oldest.clientId;
  }
}
