// The VOPR's `forge` fault class (issue 14): a stranger on the replica network. Replica links are
// not authenticated yet, so anything that reaches a replica's port can say it is a replica; the
// forger plays that stranger. Each tick, with a per-seed probability, it hands one replica a
// message in the name of any sender (another replica, the target itself, or an index outside the
// cluster) whose fields are extreme: views far ahead, at the last view and past the wire's u32,
// ops and commits past 2^32 and 2^53, negative or fractional numbers, checksums of any length,
// prepares that fail their checksums, logs that do not hold together.
//
// What it forges is what a replica must survive without authentication: every message either
// fails a check (range, checksum, log shape) or is harmless by the protocol (a proposal of a view
// change, a commit claim beyond anything prepared, a request answered to the real replica).
// It never forges what only authentication can stop (a well-formed do_view_change log or
// prepare, a not_seen nack, an in-range ping that would skew clock sync): those are the
// Byzantine faults that VSR does not claim to tolerate, and a stranger could only send them while
// it holds the link of a real replica (net/replica_bus.ts refuses it while the real one is live).
//
// The forger draws only from its own PRNG fork, so a run without `forge` is unchanged.

import { makePrepare } from '../core/header.js';
import type { Prepare } from '../core/header.js';
import { asOp, asReplicaIndex, asTimestampUs, asView } from '../core/types.js';
import type { Op, ReplicaIndex, View } from '../core/types.js';
import type { ReplicaMessage } from '../vsr/message.js';
import type { Prng } from './prng.js';

/** Numbers no replica may hold or act on. */
const extremeNumbers = [
  2 ** 32 - 1,
  2 ** 32,
  2 ** 53 - 1,
  2 ** 53,
  Number.MAX_SAFE_INTEGER + 2,
  -1,
  0.5,
  Number.NaN,
] as const;

/** The stranger's view of the cluster, read each time it forges. */
export interface ForgeryTarget {
  readonly replica: number;
  /** The target's current view. */
  readonly view: number;
}

export interface Forgery {
  readonly to: number;
  readonly message: ReplicaMessage;
}

/** Per-tick forgery probabilities, one drawn per seed (swarm testing, as fault_plan.ts). */
const forgeryProbabilities = [0.005, 0.02, 0.1] as const;

export class Forger {
  /** Messages forged, by kind (for the run's statistics). */
  readonly counts = new Map<string, number>();
  private readonly probability: number;

  constructor(
    private readonly prng: Prng,
    private readonly replicaCount: number,
    private readonly cluster: number,
  ) {
    this.probability = prng.pick(forgeryProbabilities);
  }

  /** Called once per tick while faults are on: a forged message for one of `targets`, or none. */
  maybeForge(targets: readonly ForgeryTarget[]): Forgery | null {
    if (targets.length === 0 || !this.prng.chance(this.probability)) return null;
    return this.forge(this.prng.pick(targets));
  }

  /** One forged message for `target`. */
  forge(target: ForgeryTarget): Forgery {
    const message = this.message(target);
    this.counts.set(message.kind, (this.counts.get(message.kind) ?? 0) + 1);
    return { to: target.replica, message };
  }

  private extreme(): number {
    return this.prng.pick(extremeNumbers);
  }

  /** A later view: a little or far ahead, at the last view the wire holds, or past it. */
  private laterView(view: number): number {
    const roll = this.prng.below(4);
    if (roll === 0) return view + 1 + this.prng.below(3);
    if (roll === 1) return view + 1_000;
    if (roll === 2) return view + 1 + this.prng.below(2 ** 20);
    return this.extreme();
  }

  private sender(target: number): number {
    const roll = this.prng.below(6);
    if (roll === 0) return target; // A message "from" the target itself.
    if (roll === 1) return this.replicaCount + this.prng.below(4); // Not a member.
    if (roll === 2) return this.extreme();
    return this.prng.below(this.replicaCount);
  }

  private checksum(): Uint8Array {
    const length = this.prng.chance(0.8) ? 32 : this.prng.below(40);
    return Uint8Array.from({ length }, () => this.prng.below(256));
  }

  /** A prepare that fails validation: another cluster's, or bytes that do not match. */
  private badPrepare(view: number): Prepare {
    const op = 1 + this.prng.below(50);
    const prepare = makePrepare(
      {
        replica: asReplicaIndex(0),
        cluster: this.prng.chance(0.5) ? this.cluster + 1 : this.cluster,
        view: asView(Math.min(view, 2 ** 32 - 1)),
        requestCount: 0,
        op: asOp(op),
        commit: asOp(op - 1),
        timestampUs: asTimestampUs(1),
        parent: Uint8Array.from({ length: 32 }, () => this.prng.below(256)),
      },
      Uint8Array.of(this.prng.below(256)),
    );
    // The header object says another op than its bytes, or the body does not match.
    if (this.prng.chance(0.5)) {
      return { ...prepare, header: { ...prepare.header, op: this.extreme() as Op } };
    }
    return { ...prepare, body: Uint8Array.of(1, 2, 3) };
  }

  private message(target: ForgeryTarget): ReplicaMessage {
    const replica = this.sender(target.replica) as ReplicaIndex;
    const later = this.laterView(target.view) as View;
    const now = target.view as View;
    const kind = this.prng.below(10);
    switch (kind) {
      case 0:
      case 1:
        return { kind: 'start_view_change', replica, view: later };
      case 2: {
        // From the sender that is this view's primary: a commit far beyond anything prepared.
        const primary = asReplicaIndex(target.view % this.replicaCount);
        const commit = (this.prng.chance(0.5) ? 1e9 + this.prng.below(1e6) : this.extreme()) as Op;
        return { kind: 'commit', replica: primary, view: now, commit };
      }
      case 3:
        return { kind: 'request_start_view', replica, view: later, nonce: this.prng.u32() };
      case 4:
        // A do_view_change whose log does not hold together (its op is not anchor + suffix).
        return {
          kind: 'do_view_change',
          replica,
          view: later,
          logView: this.prng.chance(0.5) ? now : (this.extreme() as View),
          op: asOp(7),
          commitMax: (this.prng.chance(0.5) ? 1e9 : this.extreme()) as Op,
          anchorOp: asOp(1),
          anchorChecksum: this.checksum(),
          suffix: [],
        };
      case 5:
        return { kind: 'prepare', replica, view: now, prepare: this.badPrepare(target.view) };
      case 6:
        return {
          kind: 'repair_prepare',
          replica,
          view: now,
          prepare: this.badPrepare(target.view),
          committed: this.prng.chance(0.5),
        };
      case 7:
        return {
          kind: 'prepare_ok',
          replica,
          view: now,
          op: this.extreme() as Op,
          checksum: this.checksum(),
        };
      case 8:
        return {
          kind: 'ping',
          replica,
          view: now,
          pingMonotonicUs: this.prng.chance(0.5) ? -1 : 2 ** 53,
        };
      default:
        return {
          kind: 'request_prepares',
          replica,
          view: now,
          opFirst: this.extreme() as Op,
          opLast: this.extreme() as Op,
        };
    }
  }
}
