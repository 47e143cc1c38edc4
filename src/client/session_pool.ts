// Pipelined writes: a client's pool of sessions. The protocol allows one request in flight per
// session (that is what makes retries exactly-once), so a client that wants many writes in
// flight at once over its one connection holds several sessions and spreads its commands over
// them. Each session keeps its own order and its own exactly-once retries (session.ts); the pool
// only chooses a session for each command: an idle one, else a new one while fewer than
// `sessionCountMax` exist (registered lazily, on its first command), else the least loaded.
//
// Ordering: commands on one session commit in the order they were submitted. With more than one
// session, commands submitted without waiting for each other may commit in any order; a caller
// that needs A before B awaits A first. With sessionCountMax 1 (the default) the pool is one
// session and every command commits in submission order, as before pipelining.
//
// Backpressure: at most `requestQueueCountMax` commands wait (not yet sent) across the pool;
// one more is refused at once with the retryable KMB_ERR_BACKPRESSURE, so a caller that
// outruns the cluster finds out instead of growing a queue without bound.

import { assert } from '../core/assert.js';
import { kmbError } from '../core/errors.js';
import type { ClientId, Op } from '../core/types.js';
import type { TraceParent } from '../core/trace_parent.js';
import { Session } from './session.js';
import type { OkResult, SessionOptions } from './session.js';
import { LoadLevels } from './load_levels.js';
import type { Leveled } from './load_levels.js';

export interface SessionPoolOptions extends SessionOptions {
  /** Sessions (writes in flight at once) this pool may hold; 1 keeps writes in order. */
  readonly sessionCountMax: number;
}

interface Member extends Leveled {
  readonly session: Session;
  /** Commands submitted to this session and not yet settled (the one in flight included). */
  load: number;
}

export class SessionPool {
  private readonly members: Member[] = [];
  /** The members by load, for the least busy one without a scan. */
  private readonly byLoad = new LoadLevels<Member>();
  private waitingCount = 0;

  constructor(private readonly options: SessionPoolOptions) {
    assert(options.sessionCountMax >= 1, 'a pool holds at least one session');
    assert(options.requestQueueCountMax > 0, 'the request queue needs room');
  }

  /** The first session's client id once it registered (null before). */
  get clientId(): ClientId | null {
    return this.members[0]?.session.clientId ?? null;
  }

  /** The first session's id (the op that registered it), or null. */
  get sessionId(): Op | null {
    return this.members[0]?.session.sessionId ?? null;
  }

  /** Sessions the pool holds now (it grows on demand up to sessionCountMax). */
  get sessionCount(): number {
    return this.members.length;
  }

  /** Submits an encoded command to a session of the pool; see Session.submit. */
  submit(what: string, body: Uint8Array, traceParent?: TraceParent): Promise<OkResult> {
    const member = this.pick();
    // A command on a busy session waits behind it; those waiting are bounded pool-wide.
    const waits = member.load > 0;
    if (waits && this.waitingCount >= this.options.requestQueueCountMax) {
      const max = this.options.requestQueueCountMax;
      return Promise.reject(kmbError('backpressure', `${max} commands already wait to be sent`));
    }
    this.byLoad.change(member, 1);
    if (waits) this.waitingCount += 1;
    return member.session.submit(what, body, traceParent).finally(() => {
      this.byLoad.change(member, -1);
      if (waits) this.waitingCount -= 1;
    });
  }

  /** An idle session, else a new one while there is room, else the least loaded. */
  private pick(): Member {
    const best = this.byLoad.least();
    if (best !== undefined && best.load === 0) return best;
    if (best === undefined || this.members.length < this.options.sessionCountMax) {
      const member = { session: new Session(this.options), load: 0, levelIndex: 0 };
      this.members.push(member);
      this.byLoad.add(member);
      return member;
    }
    return best;
  }
}
