// The SDK's view of the cluster: which replica addresses exist, which connection is current, and
// how to get a new one. Connecting goes in rounds: a round tries each address once (a leader
// hint first, then the others in turn starting after the last one that dropped) and callers that
// need a connection at the same time share one round. Between failed rounds each caller backs
// off with jitter, never past its own deadline.
//
// Addresses are taken to be in replica order (as --cluster-peers lists them), so a
// KMB_ERR_NOT_LEADER hint, which is a replica index, names an address. A hint outside the list
// is ignored. The last failure seen at each address is kept so that a timeout can say what was
// tried. A non-retryable hello answer (wrong cluster, wrong protocol) fails at once: waiting
// would not change it.

import { assert } from '../core/assert.js';
import { KmbError, kmbError } from '../core/errors.js';
import type { Address } from './address.js';
import { formatAddress } from './address.js';
import type { BackoffPolicy } from './backoff.js';
import { backoffDelayMs } from './backoff.js';
import { Connection } from './connection.js';

export interface ClusterOptions {
  readonly addresses: readonly Address[];
  readonly clusterName: string;
  readonly connectTimeoutMs: number;
  readonly backoff: BackoffPolicy;
  readonly random: () => number;
}

type RoundOutcome = { readonly connection: Connection } | { readonly fatal: KmbError | null };

export class Cluster {
  private current: Connection | null = null;
  private round: Promise<RoundOutcome> | null = null;
  /** Index of the address a round starts with when there is no hint. */
  private startIndex = 0;
  private hintIndex: number | null = null;
  private readonly lastProblems = new Map<string, string>();
  private readonly abort = new AbortController();

  constructor(private readonly options: ClusterOptions) {
    assert(options.addresses.length > 0, 'a cluster needs at least one address');
  }

  get isClosed(): boolean {
    return this.abort.signal.aborted;
  }

  /** The open connection, if there is one now (no waiting, no connecting). */
  get ready(): Connection | null {
    return this.current !== null && this.current.isOpen && !this.isClosed ? this.current : null;
  }

  /**
   * An open connection, connecting if there is none. Returns null when deadlineMs (a Date.now()
   * value) passes first; throws a KmbError when the client is closed or a node refused the hello
   * for a reason that retrying cannot fix.
   */
  async connection(deadlineMs: number): Promise<Connection | null> {
    for (let attempt = 0; ; attempt++) {
      this.throwIfClosed();
      if (this.current !== null && this.current.isOpen) return this.current;
      const remainingMs = deadlineMs - Date.now();
      if (remainingMs <= 0) return null;
      const outcome = await this.raceDeadline(this.joinRound(), deadlineMs);
      this.throwIfClosed();
      if (outcome === null) return null;
      if ('connection' in outcome) return outcome.connection;
      if (outcome.fatal !== null) throw outcome.fatal;
      await this.sleep(backoffDelayMs(attempt, this.options.backoff, this.options.random));
    }
  }

  /**
   * The node behind `from` is not the leader. Prefer the hinted replica next, and drop `from`
   * if the hint names another address. Without a usable hint, move on to the next address
   * (when there is one): this node may not learn of a leader soon.
   */
  redirect(from: Connection, leaderHint: number): void {
    const hinted = leaderHint < 0 ? undefined : this.options.addresses[leaderHint];
    if (hinted === undefined) {
      if (this.options.addresses.length > 1) this.discard(from);
      return;
    }
    this.hintIndex = leaderHint;
    const sameNode = formatAddress(hinted) === formatAddress(from.address);
    if (!sameNode) this.discard(from);
  }

  /**
   * The node behind `from` cannot serve now (not ready, shutting down, or silent): with other
   * addresses to try, the next attempt goes to the next one; with one address, it stays.
   * A silent node is dropped either way, since the connection itself may be what is stuck.
   */
  moveOn(from: Connection, silent = false): void {
    if (silent || this.options.addresses.length > 1) this.discard(from);
  }

  /** The address of the open connection, or null when there is none. */
  get currentAddress(): Address | null {
    return this.current !== null && this.current.isOpen ? this.current.address : null;
  }

  /** Stops using a connection (it misbehaved or is not the leader). */
  discard(connection: Connection): void {
    connection.close();
    if (this.current === connection) this.current = null;
  }

  /** The last problem seen at each address, for error messages. */
  describeAttempts(): string {
    const parts = this.options.addresses.map((address) => {
      const text = formatAddress(address);
      return `${text} (${this.lastProblems.get(text) ?? 'no failure recorded'})`;
    });
    return parts.join(', ');
  }

  /** Records a problem an address answered with (used by the retry loop too). */
  noteProblem(address: Address, problem: string): void {
    this.lastProblems.set(formatAddress(address), problem);
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

  private joinRound(): Promise<RoundOutcome> {
    if (this.round === null) {
      this.round = this.runRound().finally(() => {
        this.round = null;
      });
    }
    return this.round;
  }

  /** The address indexes in the order this round tries them. */
  private roundOrder(): number[] {
    const count = this.options.addresses.length;
    const order: number[] = [];
    if (this.hintIndex !== null) order.push(this.hintIndex);
    this.hintIndex = null;
    for (let i = 0; i < count; i++) {
      const index = (this.startIndex + i) % count;
      if (!order.includes(index)) order.push(index);
    }
    return order;
  }

  private async runRound(): Promise<RoundOutcome> {
    let fatal: KmbError | null = null;
    for (const index of this.roundOrder()) {
      if (this.isClosed) break;
      const address = this.options.addresses[index];
      assert(address !== undefined, 'round index within the address list');
      try {
        const connection = await Connection.open({
          address,
          clusterName: this.options.clusterName,
          connectTimeoutMs: this.options.connectTimeoutMs,
        });
        if (this.isClosed) {
          connection.close();
          break;
        }
        return { connection: this.adopt(connection, index) };
      } catch (error) {
        if (!(error instanceof KmbError)) throw error;
        this.noteProblem(address, `${error.code}: ${error.message}`);
        if (!error.retryable) fatal ??= error;
      }
    }
    return { fatal };
  }

  private adopt(connection: Connection, index: number): Connection {
    this.current?.close();
    this.current = connection;
    // After this connection drops, the next round starts with the next address: a replica
    // that went away is the least likely one to be back first.
    this.startIndex = (index + 1) % this.options.addresses.length;
    return connection;
  }

  private async raceDeadline<T>(work: Promise<T>, deadlineMs: number): Promise<T | null> {
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), Math.max(0, deadlineMs - Date.now()));
    });
    try {
      return await Promise.race([work, expired]);
    } finally {
      clearTimeout(timer);
    }
  }
}
