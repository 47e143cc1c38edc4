// A linearizability checker for the client-observed history of a VOPR run.
//
// Algorithm: the Wing & Gong search as improved by Lowe ("Testing for linearizability", 2017),
// the same one Porcupine and Knossos implement. The history of one object is a list of call
// and return entries in real-time order. The search repeatedly tries to linearize an operation
// whose call precedes every remaining return: it applies the operation to a sequential model,
// and if the model accepts the observed output it "lifts" the operation out of the list and
// goes on; when a return entry is reached first, no remaining choice works at this depth and it
// backtracks. Lowe's memoisation prunes the search: a (set of linearized operations, model
// state) pair already explored is never explored again, which is sound because the future of
// the search depends on nothing else. The result is exact — no heuristics, no sampling — given
// an exact model state key, which every model here has (states are interned, not hashed).
//
// Locality (Herlihy & Wing 1990): a history is linearizable iff the sub-history of every
// object is. So each stream is checked alone, as are the tenant registry and the stream
// registry; this keeps each search small.
//
// Operations that never returned (the run ended first) have an unknown output and a return at
// infinity: they may be linearized at any point after their call, which includes "after
// everything else" and so also covers "never took effect".
//
// The data model (kernel commands, DESIGN §5):
//   stream:   append(events, expectedOffset | null) -> {firstOffset, count} | offset_mismatch
//             read() -> the stream's whole event list
//   registry: create(key) -> {id} | exists, ids 1, 2, 3... in commit order (tenants; and streams,
//             whose ids are one global sequence across tenants)
// Outcomes that do not depend on the object's state (stream_not_found, tenant_not_found) are
// left out of the object's history by the caller: the kernel is all-or-nothing, so such a
// command changed nothing, and leaving it out cannot hide a violation elsewhere.

import { assert } from '../core/assert.js';

export interface HistoryOp<I, O> {
  readonly id: number;
  readonly client: number;
  readonly input: I;
  /** null when the operation never returned. */
  readonly output: O | null;
  readonly callTime: number;
  /** Infinity when the operation never returned. */
  readonly returnTime: number;
}

export interface Model<S, I, O> {
  init(): S;
  /** The state after `op`, or null when the model cannot produce its observed output. */
  step(state: S, op: HistoryOp<I, O>): S | null;
  /** An exact key for the state: equal keys mean equal states. */
  key(state: S): string;
  describe(op: HistoryOp<I, O>): string;
}

export type CheckResult =
  | { readonly status: 'ok'; readonly steps: number }
  | { readonly status: 'unknown'; readonly steps: number }
  | {
      readonly status: 'violation';
      readonly steps: number;
      /** The longest linearizable prefix found, and the operation that could not follow it. */
      readonly prefix: readonly string[];
      readonly stuckAt: string;
    };

interface Node {
  readonly opIndex: number;
  readonly isCall: boolean;
  readonly time: number;
  prev: Node | null;
  next: Node | null;
  /** For a call: its return entry. */
  match: Node | null;
}

/** Builds the doubly linked call/return list, in real-time order, behind a sentinel head. */
function buildList<I, O>(ops: readonly HistoryOp<I, O>[]): Node {
  const entries: Node[] = [];
  ops.forEach((op, opIndex) => {
    assert(op.callTime < op.returnTime, 'an operation returns after its call');
    const call: Node = {
      opIndex,
      isCall: true,
      time: op.callTime,
      prev: null,
      next: null,
      match: null,
    };
    const ret: Node = {
      opIndex,
      isCall: false,
      time: op.returnTime,
      prev: null,
      next: null,
      match: null,
    };
    call.match = ret;
    entries.push(call, ret);
  });
  // Pending returns (Infinity) go last, in call order: stable sort keeps insertion order.
  entries.sort((a, b) => a.time - b.time || (a.time === Infinity ? a.opIndex - b.opIndex : 0));
  const head: Node = {
    opIndex: -1,
    isCall: false,
    time: -Infinity,
    prev: null,
    next: null,
    match: null,
  };
  let last = head;
  for (const entry of entries) {
    last.next = entry;
    entry.prev = last;
    last = entry;
  }
  return head;
}

function lift(call: Node): void {
  const ret = call.match as Node;
  (call.prev as Node).next = call.next;
  if (call.next !== null) call.next.prev = call.prev;
  (ret.prev as Node).next = ret.next;
  if (ret.next !== null) ret.next.prev = ret.prev;
}

function unlift(call: Node): void {
  const ret = call.match as Node;
  (ret.prev as Node).next = ret;
  if (ret.next !== null) ret.next.prev = ret;
  (call.prev as Node).next = call;
  if (call.next !== null) call.next.prev = call;
}

/** Checks one object's history against its sequential model. */
export function checkLinearizable<S, I, O>(
  model: Model<S, I, O>,
  ops: readonly HistoryOp<I, O>[],
  stepsMax = 5_000_000,
): CheckResult {
  const head = buildList(ops);
  const linearized = new Uint8Array(ops.length);
  const bits = new Uint32Array(Math.ceil(ops.length / 32));
  const cache = new Set<string>();
  const stack: { call: Node; state: S }[] = [];
  let state = model.init();
  let entry = head.next;
  let steps = 0;
  let best: { depth: number; prefix: number[]; stuck: number } = {
    depth: -1,
    prefix: [],
    stuck: -1,
  };
  while (head.next !== null) {
    if (++steps > stepsMax) return { status: 'unknown', steps };
    assert(entry !== null, 'the list ends with a return entry');
    if (entry.isCall) {
      const op = ops[entry.opIndex] as HistoryOp<I, O>;
      const next = model.step(state, op);
      if (next !== null) {
        bits[entry.opIndex >> 5] = (bits[entry.opIndex >> 5] ?? 0) | (1 << (entry.opIndex & 31));
        const key = `${bits.join(',')}|${model.key(next)}`;
        if (!cache.has(key)) {
          cache.add(key);
          linearized[entry.opIndex] = 1;
          stack.push({ call: entry, state });
          state = next;
          lift(entry);
          entry = head.next;
          continue;
        }
        bits[entry.opIndex >> 5] = (bits[entry.opIndex >> 5] ?? 0) & ~(1 << (entry.opIndex & 31));
      }
      entry = entry.next;
      continue;
    }
    if (stack.length > best.depth) {
      best = {
        depth: stack.length,
        prefix: stack.map((s) => s.call.opIndex),
        stuck: entry.opIndex,
      };
    }
    const top = stack.pop();
    if (top === undefined) return violation(model, ops, best, steps);
    linearized[top.call.opIndex] = 0;
    bits[top.call.opIndex >> 5] =
      (bits[top.call.opIndex >> 5] ?? 0) & ~(1 << (top.call.opIndex & 31));
    state = top.state;
    unlift(top.call);
    entry = top.call.next;
  }
  return { status: 'ok', steps };
}

function violation<S, I, O>(
  model: Model<S, I, O>,
  ops: readonly HistoryOp<I, O>[],
  best: { prefix: number[]; stuck: number },
  steps: number,
): CheckResult {
  const describe = (index: number): string => model.describe(ops[index] as HistoryOp<I, O>);
  return {
    status: 'violation',
    steps,
    prefix: best.prefix.map(describe),
    stuckAt: best.stuck >= 0 ? describe(best.stuck) : '(none)',
  };
}

// ----- models -----

/** A persistent sequence, interned so that equal sequences built the same way share a node. */
interface SeqNode<T> {
  readonly id: number;
  readonly parent: SeqNode<T> | null;
  /** The items this node adds after its parent's. */
  readonly chunk: readonly T[];
  readonly length: number;
}

class SeqInterner<T> {
  private readonly children = new Map<string, SeqNode<T>>();
  private idNext = 1;
  readonly root: SeqNode<T> = { id: 0, parent: null, chunk: [], length: 0 };

  /** The node for `parent` followed by the chunk of operation `opId`. */
  extend(parent: SeqNode<T>, opId: number, chunk: readonly T[]): SeqNode<T> {
    const key = `${parent.id}:${opId}`;
    let node = this.children.get(key);
    if (node === undefined) {
      node = { id: this.idNext++, parent, chunk, length: parent.length + chunk.length };
      this.children.set(key, node);
    }
    return node;
  }

  items(node: SeqNode<T>): T[] {
    const chunks: (readonly T[])[] = [];
    for (let n: SeqNode<T> | null = node; n !== null; n = n.parent) chunks.push(n.chunk);
    return chunks.reverse().flat();
  }
}

export type StreamInput =
  | {
      readonly kind: 'append';
      readonly events: readonly string[];
      readonly expected: number | null;
    }
  | { readonly kind: 'read' };

export type StreamOutput =
  | { readonly kind: 'appended'; readonly firstOffset: number; readonly count: number }
  | { readonly kind: 'offset_mismatch' }
  | { readonly kind: 'read'; readonly events: readonly string[] };

/** One stream: a sequence of events that appends extend and reads return whole. */
export function streamModel(): Model<SeqNode<string>, StreamInput, StreamOutput> {
  const seq = new SeqInterner<string>();
  return {
    init: () => seq.root,
    key: (state) => String(state.id),
    step(state, op) {
      const { input, output } = op;
      if (input.kind === 'read') {
        if (output === null) return state;
        if (output.kind !== 'read' || output.events.length !== state.length) return null;
        const items = seq.items(state);
        return items.every((item, i) => item === output.events[i]) ? state : null;
      }
      const matches = input.expected === null || input.expected === state.length;
      if (output === null) return matches ? seq.extend(state, op.id, input.events) : state;
      if (output.kind === 'offset_mismatch') return matches ? null : state;
      if (output.kind !== 'appended' || !matches) return null;
      if (output.firstOffset !== state.length || output.count !== input.events.length) return null;
      return seq.extend(state, op.id, input.events);
    },
    describe(op) {
      const { input, output } = op;
      const at = input.kind === 'append' && input.expected !== null ? `@${input.expected}` : '';
      const what = input.kind === 'read' ? 'read' : `append${listEvents(input.events)}${at}`;
      let result = 'pending';
      if (output?.kind === 'appended') result = `ok first=${output.firstOffset} n=${output.count}`;
      else if (output?.kind === 'offset_mismatch') result = 'offset_mismatch';
      else if (output?.kind === 'read') result = listEvents(output.events);
      return `#${op.id} client ${op.client} ${what} -> ${result} ${span(op)}`;
    },
  };
}

/** When an operation ran, in history time. */
function span<I, O>(op: HistoryOp<I, O>): string {
  return `(t ${op.callTime}..${op.returnTime})`;
}

/** A short rendering of an event list: its length and its last few events (padding cut). */
function listEvents(events: readonly string[]): string {
  const shown = events.slice(-3).map((event) => event.replace(/\.+$/, ''));
  const more = events.length > shown.length ? `${events.length} events: ..., ` : '';
  return `[${more}${shown.join(' ')}]`;
}

export type RegistryOutput =
  { readonly kind: 'created'; readonly id: number } | { readonly kind: 'exists' };

/** A registry of unique keys with ids 1, 2, 3... in creation order (tenants; streams). */
export function registryModel(): Model<SeqNode<string>, string, RegistryOutput> {
  const seq = new SeqInterner<string>();
  return {
    init: () => seq.root,
    key: (state) => String(state.id),
    step(state, op) {
      const exists = seq.items(state).includes(op.input);
      const { output } = op;
      if (output === null) return exists ? state : seq.extend(state, op.id, [op.input]);
      if (output.kind === 'exists') return exists ? state : null;
      if (exists || output.id !== state.length + 1) return null;
      return seq.extend(state, op.id, [op.input]);
    },
    describe(op) {
      const { output } = op;
      const result =
        output === null ? 'pending' : output.kind === 'exists' ? 'exists' : `id ${output.id}`;
      return `#${op.id} client ${op.client} create ${op.input} -> ${result} ${span(op)}`;
    },
  };
}
