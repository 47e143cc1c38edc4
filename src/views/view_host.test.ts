// The view host's feeding rules, with small recording views: every view gets every op once, in
// op order; a view that starts ahead (as if it had loaded a checkpoint) is skipped until the op
// after its position; an op that would leave a gap in a view's sequence, or arrive out of order,
// is refused by an assertion; positions() and slowest() report what the views hold. rebuild()
// resets a view and replays ops (sync or async), and catchUp() feeds only the ops above a
// view's position; a hosted view is not fed live ops while it is being rebuilt, and must reach
// the live position by the end of its rebuild.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AssertionError } from '../core/assert.js';
import { asOp, asTimestampUs } from '../core/types.js';
import type { CommittedOp, View } from './view.js';
import { ViewHost } from './view_host.js';

/** A view that records the ops it applied; it may start at a position (a loaded checkpoint). */
class RecordingView implements View {
  readonly applied: number[] = [];
  resets = 0;

  constructor(
    readonly name: string,
    public appliedOp = 0,
  ) {}

  apply(op: CommittedOp): void {
    this.applied.push(op.op);
    this.appliedOp = op.op;
  }

  reset(): void {
    this.resets += 1;
    this.applied.length = 0;
    this.appliedOp = 0;
  }

  digest(): Uint8Array {
    return Uint8Array.from(this.applied);
  }
}

function op(n: number): CommittedOp {
  return { op: asOp(n), timestampUs: asTimestampUs(1000 + n), applied: [] };
}

function ops(from: number, to: number): CommittedOp[] {
  return Array.from({ length: to - from + 1 }, (_, i) => op(from + i));
}

async function* slowly(list: readonly CommittedOp[], between: (n: number) => void) {
  for (const item of list) {
    yield item;
    between(item.op);
    await Promise.resolve();
  }
}

test('every view gets each op once, in order; a view ahead is skipped to its next op', () => {
  const fresh = new RecordingView('fresh');
  const ahead = new RecordingView('ahead', 3);
  const host = new ViewHost([fresh, ahead]);
  assert.deepEqual(host.slowest(), { name: 'fresh', appliedOp: 0 });
  for (const item of ops(1, 5)) host.executed(item);
  assert.deepEqual(fresh.applied, [1, 2, 3, 4, 5]);
  assert.deepEqual(ahead.applied, [4, 5]);
  assert.deepEqual(host.positions(), [
    { name: 'fresh', appliedOp: 5 },
    { name: 'ahead', appliedOp: 5 },
  ]);
  assert.equal(host.executedOp, 5);
  assert.equal(host.view('ahead'), ahead);
  assert.equal(host.view('missing'), undefined);
});

test('an op out of order, or one that leaves a gap in a view, is refused', () => {
  const host = new ViewHost([new RecordingView('a')]);
  host.executed(op(1));
  assert.throws(() => host.executed(op(1)), AssertionError);
  assert.throws(() => host.executed(op(3)), AssertionError);
  assert.throws(() => new ViewHost([new RecordingView('a'), new RecordingView('a')]));
});

test('slowest() is the lowest position', () => {
  const behind = new RecordingView('behind');
  const host = new ViewHost([new RecordingView('first', 7), behind, new RecordingView('x', 9)]);
  assert.deepEqual(host.slowest(), { name: 'behind', appliedOp: 0 });
  assert.equal(new ViewHost([]).slowest(), null);
});

test('rebuild() resets and replays; catchUp() feeds only ops above the position', async () => {
  const view = new RecordingView('v', 4);
  const host = new ViewHost([]);
  assert.equal(await host.catchUp(view, ops(1, 6)), 2);
  assert.deepEqual(view.applied, [5, 6]);
  assert.equal(
    await host.rebuild(
      view,
      slowly(ops(1, 6), () => undefined),
    ),
    6,
  );
  assert.equal(view.resets, 1);
  assert.deepEqual(view.applied, [1, 2, 3, 4, 5, 6]);
});

test('a hosted view being rebuilt skips live ops and must reach the live position', async () => {
  const other = new RecordingView('other');
  const rebuilt = new RecordingView('rebuilt');
  const host = new ViewHost([other, rebuilt]);
  for (const item of ops(1, 2)) host.executed(item);
  // Ops 3 and 4 commit while the rebuild runs: the other view takes them, the rebuilt one not.
  const live = (n: number): void => {
    if (n === 1) host.executed(op(3));
    if (n === 2) host.executed(op(4));
  };
  await host.rebuild(rebuilt, slowly(ops(1, 4), live));
  assert.deepEqual(other.applied, [1, 2, 3, 4]);
  assert.deepEqual(rebuilt.applied, [1, 2, 3, 4]);
  host.executed(op(5));
  assert.deepEqual(rebuilt.applied, [1, 2, 3, 4, 5]);
  // A rebuild that stops short of what the host has executed is a caller's mistake.
  await assert.rejects(host.rebuild(rebuilt, ops(1, 3)), AssertionError);
});
