// Admission of session registrations, per client connection (issue 14). Sessions live in the
// replicated client table, which is bounded and evicts its oldest session when full: without a
// bound per connection, one connection that registers more sessions than the table holds evicts
// every other client's session. Two limits apply to each connection:
//   - sessions: how many distinct client ids may register over it (a register retried with the
//     same client id is the same session and is admitted again, free);
//   - rate: a token bucket, refilled at `registerRatePerSecond` up to `registerBurst` tokens,
//     one token per new session.
// A refusal is a value (the reason and a message naming the limit and its key); the node
// answers the register request with KMB_ERR_LIMIT_EXCEEDED. Refusals are counted and logged
// here (rate-limited), so the node's onRequest calls this in one line.
//
// Invariants: a connection's set of client ids never exceeds sessionCountMax; a bucket never
// holds more than its burst nor fewer than 0 tokens; time comes from the injected clock only.
// State is kept in a WeakMap keyed by the connection, so a closed connection leaves nothing.

import { assert } from '../core/assert.js';
import { constants } from '../core/constants.js';
import type { ClientId } from '../core/types.js';
import type { Logger } from '../observability/logger.js';
import type { CounterCell } from '../observability/metrics.js';

/** The limits, from [server] (docs/configuration.md). */
export interface SessionAdmissionLimits {
  /** Distinct sessions that may register over one connection. */
  readonly sessionCountMax: number;
  /** Tokens added to a connection's bucket per second. */
  readonly registerRatePerSecond: number;
  /** The bucket's capacity: registrations one connection may make at once. */
  readonly registerBurst: number;
}

export const sessionAdmissionLimitsDefault: SessionAdmissionLimits = {
  sessionCountMax: constants.connectionSessionCountMaxDefault,
  registerRatePerSecond: constants.sessionRegisterRatePerSecondDefault,
  registerBurst: constants.sessionRegisterBurstDefault,
};

/** Why a registration was refused (kmb_client_sessions_refused_total{reason}). */
export type SessionRefusalReason = 'sessions_per_connection' | 'register_rate';

/**
 * A token bucket: `capacity` tokens at most, `ratePerSecond` added continuously. Time is passed
 * in (monotonic milliseconds), so it is a pure function of its calls.
 */
export class TokenBucket {
  private tokens: number;
  private lastMs: number;

  constructor(
    private readonly ratePerSecond: number,
    private readonly capacity: number,
    nowMs: number,
  ) {
    assert(ratePerSecond > 0, 'a bucket refills');
    assert(capacity >= 1, 'a bucket holds at least one token');
    this.tokens = capacity;
    this.lastMs = nowMs;
  }

  /** Takes one token if there is one; false when the bucket is empty. */
  take(nowMs: number): boolean {
    this.refill(nowMs);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    assert(this.tokens >= 0 && this.tokens <= this.capacity, 'tokens within the bucket');
    return true;
  }

  /** Tokens available now (fractional while refilling). */
  available(nowMs: number): number {
    this.refill(nowMs);
    return this.tokens;
  }

  private refill(nowMs: number): void {
    // A clock that steps back (it should not: it is monotonic) adds nothing.
    const elapsedMs = Math.max(0, nowMs - this.lastMs);
    this.lastMs = Math.max(this.lastMs, nowMs);
    this.tokens = Math.min(this.capacity, this.tokens + (elapsedMs * this.ratePerSecond) / 1000);
  }
}

interface ConnectionState {
  readonly clientIds: Set<ClientId>;
  readonly bucket: TokenBucket;
}

export interface SessionAdmissionOptions {
  readonly limits: SessionAdmissionLimits;
  readonly logger: Logger;
  readonly refused: Readonly<Record<SessionRefusalReason, CounterCell>>;
  /** Monotonic milliseconds; default performance.now. */
  readonly nowMs?: () => number;
}

/** How often (ms) the refusal warning may be logged per reason. */
const refusalLogIntervalMs = 10_000;

export class SessionAdmission {
  private readonly states = new WeakMap<object, ConnectionState>();
  private readonly nowMs: () => number;

  constructor(private readonly options: SessionAdmissionOptions) {
    const { limits } = options;
    assert(limits.sessionCountMax >= 1, 'a connection may register a session');
    assert(limits.registerBurst >= 1 && limits.registerRatePerSecond > 0, 'bucket is usable');
    this.nowMs = options.nowMs ?? (() => performance.now());
  }

  /**
   * Whether `connection` may register the session `clientId`: null when admitted, else the
   * message to answer with (KMB_ERR_LIMIT_EXCEEDED). A refusal is counted and logged.
   */
  admit(connection: object, clientId: ClientId, remote: string): string | null {
    const state = this.stateOf(connection);
    if (state.clientIds.has(clientId)) return null;
    const { limits } = this.options;
    if (state.clientIds.size >= limits.sessionCountMax) {
      return this.refuse(
        'sessions_per_connection',
        remote,
        `this connection already registered ${limits.sessionCountMax} sessions ` +
          '([server] sessions_per_connection_max); use the sessions it has or connect again',
      );
    }
    if (!state.bucket.take(this.nowMs())) {
      return this.refuse(
        'register_rate',
        remote,
        `sessions are registered faster than ${limits.registerRatePerSecond} per second ` +
          `after a burst of ${limits.registerBurst} on this connection ` +
          '([server] session_registrations_per_second, session_registration_burst)',
      );
    }
    state.clientIds.add(clientId);
    assert(state.clientIds.size <= limits.sessionCountMax, 'sessions within the limit');
    return null;
  }

  private stateOf(connection: object): ConnectionState {
    let state = this.states.get(connection);
    if (state === undefined) {
      const { limits } = this.options;
      const bucket = new TokenBucket(
        limits.registerRatePerSecond,
        limits.registerBurst,
        this.nowMs(),
      );
      state = { clientIds: new Set(), bucket };
      this.states.set(connection, state);
    }
    return state;
  }

  private refuse(reason: SessionRefusalReason, remote: string, message: string): string {
    this.options.refused[reason].inc();
    this.options.logger.warnRateLimited(
      `session-refused:${reason}`,
      refusalLogIntervalMs,
      'Session registration refused',
      { reason, remote, message },
    );
    return message;
  }
}
