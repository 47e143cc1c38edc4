// The view host: holds a replica's derived views (view.ts) and feeds them the committed ops. The
// node hands it each `executed` data effect (it has the shape of vsr's ViewSink: a method
// `executed(op)`; views/ does not import vsr), and it passes the op to every view that does not
// have it yet. It also rebuilds a view from a stream of committed ops (node/committed_replay.ts
// makes one from a journal) and reports each view's applied position for the projection metrics
// and /status (node/view_metrics.ts).
//
// Invariants: views are fed in op order; a view is fed an op only when the op is the one after
// its position (appliedOp + 1, asserted), and ops at or below its position are skipped (a view
// that starts ahead, having kept a durable store or loaded a checkpoint, is not fed them twice);
// after apply() a view's position is the op it was fed. View names are unique. A view being
// rebuilt is not fed live ops; when its rebuild ends it must have reached every op the host has
// been fed (asserted), so it rejoins the live feed exactly where the others are.

import { assert } from '../core/assert.js';
import type { CommittedOp, View } from './view.js';

/** Views one host holds: the stream index now; state machines, SQL tables, a Merkle tree later. */
export const viewCountMax = 16;

export interface ViewPosition {
  readonly name: string;
  /** The last op the view applied; 0 before the first. */
  readonly appliedOp: number;
}

export type CommittedOps = Iterable<CommittedOp> | AsyncIterable<CommittedOp>;

export class ViewHost {
  private readonly hosted: readonly View[];
  private readonly rebuilding = new Set<View>();
  private executedOpValue = 0;

  constructor(views: readonly View[]) {
    assert(views.length <= viewCountMax, 'a host holds at most viewCountMax views');
    const names = new Set(views.map((view) => view.name));
    assert(names.size === views.length, 'view names are unique');
    this.hosted = [...views];
  }

  /** The views, in the order they are fed. */
  get views(): readonly View[] {
    return this.hosted;
  }

  /** The highest op the host has been fed live (executed), 0 before any. */
  get executedOp(): number {
    return this.executedOpValue;
  }

  view(name: string): View | undefined {
    return this.hosted.find((view) => view.name === name);
  }

  /** One committed op, in op order: every view that does not have it yet applies it. */
  executed(op: CommittedOp): void {
    assert(op.op > this.executedOpValue, 'committed ops arrive in op order');
    this.executedOpValue = op.op;
    for (const view of this.hosted) {
      if (!this.rebuilding.has(view)) feed(view, op);
    }
  }

  positions(): ViewPosition[] {
    return this.hosted.map((view) => ({ name: view.name, appliedOp: view.appliedOp }));
  }

  /** The view with the lowest applied position (the first such, in feed order); null if none. */
  slowest(): ViewPosition | null {
    let slowest: View | null = null;
    for (const view of this.hosted) {
      if (slowest === null || view.appliedOp < slowest.appliedOp) slowest = view;
    }
    return slowest === null ? null : { name: slowest.name, appliedOp: slowest.appliedOp };
  }

  /**
   * Drops everything `view` derived and feeds it `ops` (committed ops from op 1, in order).
   * Resolves with the number of ops it applied.
   */
  async rebuild(view: View, ops: CommittedOps): Promise<number> {
    view.reset();
    assert(view.appliedOp === 0, 'a reset view is at position 0');
    return this.catchUp(view, ops);
  }

  /**
   * Feeds `view` the ops of `ops` above its position; ops at or below it are read and skipped
   * (the kernel state behind the ops is rebuilt from op 1 either way: committed_replay.ts).
   */
  async catchUp(view: View, ops: CommittedOps): Promise<number> {
    const hosted = this.hosted.includes(view);
    assert(!this.rebuilding.has(view), 'one rebuild of a view at a time');
    if (hosted) this.rebuilding.add(view);
    let appliedCount = 0;
    try {
      for await (const op of ops) {
        if (feed(view, op)) appliedCount += 1;
      }
    } finally {
      this.rebuilding.delete(view);
    }
    if (hosted) {
      assert(view.appliedOp >= this.executedOpValue, 'a rebuilt view reaches the live position');
    }
    return appliedCount;
  }
}

/** Applies `op` to `view` unless the view has it already; whether it applied. */
function feed(view: View, op: CommittedOp): boolean {
  if (op.op <= view.appliedOp) return false;
  assert(op.op === view.appliedOp + 1, `view ${view.name} is fed the op after its position`);
  view.apply(op);
  assert(view.appliedOp === op.op, `view ${view.name} moved to the op it applied`);
  return true;
}
