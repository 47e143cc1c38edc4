// The SDK's view of the cluster: which replica addresses exist, which connection is current, and
// how to get a new one, without waiting on a replica that does not answer.
//
// Connecting: a call that needs a connection goes through the addresses in its order (a leader
// hint first, then the others starting after the last one that dropped, and the replicas found
// unresponsive last) and waits for each one's hello at most its attempt budget: attemptTimeoutMs,
// never past its deadline. Connection attempts are shared: one dial per address at a time, which
// any number of calls may wait on, and which goes on (up to connectTimeoutMs) after a call stops
// waiting for it, so a call that comes back to that address later finds it further along. The
// first dial a call waits for to complete while no connection is open becomes the current
// connection; one that completes while another is open is closed. Between passes that found
// nothing, a call backs off with jitter, never past its own deadline. Bounds: one dial per
// address at a time (at most clientLimits.addressCountMax), one current connection.
//
// Unresponsive replicas: a replica that kept a message unanswered for attemptTimeoutMs, or did
// not answer a hello within a call's attempt budget, is marked unresponsive until it is heard from
// again (a hello completes or an answer comes back). A stopped or partitioned leader is one: the
// backups still in its view answer KMB_ERR_NOT_LEADER naming it until they elect another. Such a
// hint is not followed (and counted): the call moves on to the next address instead, while a dial
// to the hinted replica is started in the background (a probe, whose connection is closed once
// made) so that the mark is lifted as soon as it answers. A replica that refuses connections (a killed process) is not marked: refusing
// costs nothing to find out.
//
// Addresses are taken to be in replica order (as --cluster-peers lists them), so a
// KMB_ERR_NOT_LEADER hint, which is a replica index, names an address. A hint outside the list
// is ignored. What each call met at each address goes into its own CallLog (call_log.ts), for its
// timeout message. A non-retryable hello answer (wrong cluster, wrong protocol) fails the call
// once every address was tried: waiting would not change it.

import { assert } from '../core/assert.js';
import { KmbError, kmbError } from '../core/errors.js';
import type { Address } from './address.js';
import type { BackoffPolicy } from './backoff.js';
import { backoffDelayMs } from './backoff.js';
import type { CallLog } from './call_log.js';
import { Connection } from './connection.js';

export interface ClusterOptions {
  readonly addresses: readonly Address[];
  readonly clusterName: string;
  /** How long one dial (TCP connect and hello) may take in all. */
  readonly connectTimeoutMs: number;
  /** How long one call waits for one address's hello before it tries the next. */
  readonly attemptTimeoutMs: number;
  readonly backoff: BackoffPolicy;
  readonly random: () => number;
}

/** How the client dealt with replicas that did not answer (see Client.failoverCounters). */
export interface FailoverCounters {
  /** Replicas marked unresponsive (a message or a hello unanswered for a whole attempt). */
  unresponsive: number;
  /** KMB_ERR_NOT_LEADER hints not followed because they named an unresponsive replica. */
  hintsNotFollowed: number;
  /** Unresponsive replicas heard from again (the mark lifted). */
  recovered: number;
}

/** What one dial ended with: the connection (this one, or the one that was already open). */
type DialOutcome = Connection | KmbError;

interface Dial {
  /** Set before the dial is listed in Cluster.dials. */
  outcome: Promise<DialOutcome> | null;
  /**
   * Whether a call waits for this dial. A probe's dial (nobody waits) only finds out whether the
   * replica answers: its connection is closed, never made current, since a replica can answer a
   * hello and still sit on requests (a leader cut off from its backups).
   */
  wanted: boolean;
}

function sameAddress(a: Address, b: Address): boolean {
  return a.host === b.host && a.port === b.port;
}

export class Cluster {
  readonly counters: FailoverCounters = { unresponsive: 0, hintsNotFollowed: 0, recovered: 0 };
  private current: Connection | null = null;
  /** The dial under way to each address (by index), at most one each. */
  private readonly dials = new Map<number, Dial>();
  /** Index of the address a pass starts with when there is no usable hint. */
  private startIndex = 0;
  /** The replica a NOT_LEADER named, until a connection is adopted. */
  private hintIndex: number | null = null;
  /** Replicas (by index) found unresponsive and not heard from since. */
  private readonly unresponsive = new Set<number>();
  private readonly abort = new AbortController();

  constructor(private readonly options: ClusterOptions) {
    assert(options.addresses.length > 0, 'a cluster needs at least one address');
    assert(options.attemptTimeoutMs > 0, 'an attempt needs time');
  }

  get isClosed(): boolean {
    return this.abort.signal.aborted;
  }

  get addresses(): readonly Address[] {
    return this.options.addresses;
  }

  /** The open connection, if there is one now (no waiting, no connecting). */
  get ready(): Connection | null {
    return this.current !== null && this.current.isOpen && !this.isClosed ? this.current : null;
  }

  /** The address of the open connection, or null when there is none. */
  get currentAddress(): Address | null {
    return this.current !== null && this.current.isOpen ? this.current.address : null;
  }

  /**
   * An open connection, connecting if there is none. Returns null when deadlineMs (a Date.now()
   * value) passes first; throws a KmbError when the client is closed or the nodes refused the
   * hello for a reason that retrying cannot fix. What went wrong where goes into `log`.
   */
  async connection(deadlineMs: number, log: CallLog): Promise<Connection | null> {
    for (let pass = 0; ; pass++) {
      this.throwIfClosed();
      const ready = this.ready;
      if (ready !== null) return ready;
      if (deadlineMs - Date.now() <= 0) return null;
      const outcome = await this.pass(deadlineMs, log);
      this.throwIfClosed();
      if (outcome instanceof Connection) return outcome;
      if (outcome === 'deadline') return null;
      if (outcome !== null) throw outcome;
      const delayMs = backoffDelayMs(pass, this.options.backoff, this.options.random);
      await this.sleep(Math.min(delayMs, Math.max(0, deadlineMs - Date.now())));
    }
  }

  /**
   * The node behind `from` is not the leader. Prefer the hinted replica next, and drop `from`
   * if the hint names another address. A hint naming an unresponsive replica is not followed
   * (false is returned): the next attempt goes to the next address, and a probe finds out when
   * the hinted replica answers again. Without a usable hint, move on to the next address (when
   * there is one): this node may not learn of a leader soon.
   */
  redirect(from: Connection, leaderHint: number): boolean {
    const hinted = leaderHint < 0 ? undefined : this.options.addresses[leaderHint];
    const several = this.options.addresses.length > 1;
    if (hinted === undefined) {
      if (several) this.discard(from);
      return true;
    }
    if (this.unresponsive.has(leaderHint)) {
      this.counters.hintsNotFollowed += 1;
      this.probe(leaderHint);
      if (several) this.discard(from);
      return false;
    }
    this.hintIndex = leaderHint;
    if (!sameAddress(hinted, from.address)) this.discard(from);
    return true;
  }

  /**
   * The node behind `from` cannot serve now (not ready, shutting down): with other addresses to
   * try, the next attempt goes to the next one; with one address, it stays.
   */
  moveOn(from: Connection): void {
    if (this.options.addresses.length > 1) this.discard(from);
  }

  /**
   * The node behind `from` kept a message unanswered for a whole attempt: it is marked
   * unresponsive and its connection dropped (the connection itself may be what is stuck).
   */
  unanswered(from: Connection): void {
    const index = this.indexOf(from.address);
    if (index !== null) this.markUnresponsive(index);
    this.discard(from);
  }

  /** The node behind `from` answered: it is responsive (cheap when no replica is marked). */
  answered(from: Connection): void {
    if (this.unresponsive.size === 0) return;
    const index = this.indexOf(from.address);
    if (index !== null) this.heard(index);
  }

  /** Stops using a connection (it misbehaved or is not the leader). */
  discard(connection: Connection): void {
    connection.close();
    if (this.current === connection) this.current = null;
  }

  /** Sleeps, but wakes at once when the client is closed. */
  sleep(delayMs: number): Promise<void> {
    return new Promise((resolve) => {
      const signal = this.abort.signal;
      if (signal.aborted) return resolve();
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, delayMs));
      signal.addEventListener('abort', done);
    });
  }

  close(): void {
    this.abort.abort();
    this.current?.close();
    this.current = null;
  }

  private throwIfClosed(): void {
    if (this.isClosed) throw kmbError('connection_lost', 'the client is closed');
  }

  private indexOf(address: Address): number | null {
    const index = this.options.addresses.findIndex((known) => sameAddress(known, address));
    return index < 0 ? null : index;
  }

  private markUnresponsive(index: number): void {
    if (this.unresponsive.has(index)) return;
    this.unresponsive.add(index);
    this.counters.unresponsive += 1;
  }

  private heard(index: number): void {
    if (this.unresponsive.delete(index)) this.counters.recovered += 1;
  }

  /** Starts a dial to `index` unless one is under way; nobody waits for it. */
  private probe(index: number): void {
    if (!this.dials.has(index) && !this.isClosed) void this.dial(index, false);
  }

  /** The address indexes in the order a pass tries them. */
  private order(): number[] {
    const count = this.options.addresses.length;
    const first: number[] = [];
    const last: number[] = [];
    const hint = this.hintIndex;
    if (hint !== null && !this.unresponsive.has(hint)) first.push(hint);
    for (let i = 0; i < count; i++) {
      const index = (this.startIndex + i) % count;
      if (index === hint) continue;
      (this.unresponsive.has(index) ? last : first).push(index);
    }
    if (hint !== null && this.unresponsive.has(hint)) last.push(hint);
    return [...first, ...last];
  }

  /**
   * One pass over the addresses: a connection; a non-retryable error when every address failed
   * and one failed so; null when every address failed otherwise; 'deadline' when time ran out.
   */
  private async pass(deadlineMs: number, log: CallLog): Promise<DialOutcome | null | 'deadline'> {
    let fatal: KmbError | null = null;
    for (const index of this.order()) {
      const ready = this.ready;
      if (ready !== null) return ready;
      if (this.isClosed) return null;
      const address = this.options.addresses[index];
      assert(address !== undefined, 'pass index within the address list');
      const remainingMs = deadlineMs - Date.now();
      if (remainingMs <= 0) return 'deadline';
      const waitMs = Math.min(remainingMs, this.options.attemptTimeoutMs);
      const outcome = await this.within(this.dial(index), waitMs);
      if (outcome instanceof Connection) return outcome;
      if (outcome === null) {
        log.note(address, `no hello in ${waitMs} ms`);
        // A wait the call's deadline cut short is no verdict on the replica.
        if (waitMs >= this.options.attemptTimeoutMs) this.markUnresponsive(index);
        continue;
      }
      log.note(address, `${outcome.code}: ${outcome.message}`);
      if (!outcome.retryable) fatal ??= outcome;
    }
    return fatal;
  }

  /**
   * The dial under way to `index` (wanted from now on if `wanted`), or a new one. Its promise
   * never rejects with a KmbError.
   */
  private dial(index: number, wanted = true): Promise<DialOutcome> {
    const pending = this.dials.get(index);
    if (pending !== undefined) {
      assert(pending.outcome !== null, 'a dial is listed once its outcome is');
      pending.wanted ||= wanted;
      return pending.outcome;
    }
    const address = this.options.addresses[index];
    assert(address !== undefined, 'dial index within the address list');
    const { clusterName, connectTimeoutMs } = this.options;
    const signal = this.abort.signal;
    const opening = Connection.open({ address, clusterName, connectTimeoutMs, signal });
    const dial: Dial = { outcome: null, wanted };
    const outcome: Promise<DialOutcome> = opening
      .then(
        (connection) => this.settle(index, connection, dial.wanted),
        (error: unknown) => {
          if (!(error instanceof KmbError)) throw error;
          return error;
        },
      )
      .finally(() => {
        if (this.dials.get(index) === dial) this.dials.delete(index);
      });
    dial.outcome = outcome;
    this.dials.set(index, dial);
    return outcome;
  }

  /**
   * A dial completed: the replica answers. Its connection becomes current if a call wants it
   * and none is open.
   */
  private settle(index: number, connection: Connection, wanted: boolean): DialOutcome {
    this.heard(index);
    if (this.isClosed) {
      connection.close();
      return kmbError('connection_lost', 'the client is closed');
    }
    const ready = this.ready;
    if (ready !== null || !wanted) {
      connection.close();
      return ready ?? kmbError('connection_lost', 'a probe only');
    }
    this.current = connection;
    this.hintIndex = null;
    // After this connection drops, the next pass starts with the next address: a replica that
    // went away is the least likely one to be back first.
    this.startIndex = (index + 1) % this.options.addresses.length;
    return connection;
  }

  /** The work's outcome, or null when waitMs passes first (the work goes on). */
  private async within<T>(work: Promise<T>, waitMs: number): Promise<T | null> {
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), Math.max(0, waitMs));
    });
    try {
      return await Promise.race([work, expired]);
    } finally {
      clearTimeout(timer);
    }
  }
}
