// Tests for the linearizability checker: hand-written histories that must pass and histories
// that must FAIL (lost, duplicated, reordered and stale results), and a cross-check against a
// brute-force checker that tries every real-time-respecting order of small random histories.

import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { checkLinearizable, registryModel, streamModel } from './linearizability.js';
import type {
  HistoryOp,
  Model,
  RegistryOutput,
  StreamInput,
  StreamOutput,
} from './linearizability.js';
import { Prng } from './prng.js';

type StreamOp = HistoryOp<StreamInput, StreamOutput>;

let nextId = 1;
function append(
  client: number,
  events: string[],
  times: [number, number],
  output: StreamOutput | null,
  expected: number | null = null,
): StreamOp {
  return {
    id: nextId++,
    client,
    input: { kind: 'append', events, expected },
    output,
    callTime: times[0],
    returnTime: output === null ? Infinity : times[1],
  };
}

function read(client: number, events: string[], times: [number, number]): StreamOp {
  return {
    id: nextId++,
    client,
    input: { kind: 'read' },
    output: { kind: 'read', events },
    callTime: times[0],
    returnTime: times[1],
  };
}

const ok = (firstOffset: number, count: number): StreamOutput => ({
  kind: 'appended',
  firstOffset,
  count,
});
const mismatch: StreamOutput = { kind: 'offset_mismatch' };

function status(ops: StreamOp[]): string {
  return checkLinearizable(streamModel(), ops).status;
}

describe('linearizability: streams', () => {
  it('accepts sequential and concurrent histories that have a linearization', () => {
    // Proves the checker finds a valid order, including one that differs from call order.
    assert.equal(status([append(1, ['a'], [1, 2], ok(0, 1)), read(2, ['a'], [3, 4])]), 'ok');
    assert.equal(
      status([
        append(1, ['a'], [1, 10], ok(1, 1)),
        append(2, ['b'], [2, 9], ok(0, 1)),
        read(3, ['b', 'a'], [11, 12]),
      ]),
      'ok',
    );
    // A read concurrent with an append may see it or not.
    assert.equal(status([append(1, ['a'], [1, 10], ok(0, 1)), read(2, [], [2, 3])]), 'ok');
    assert.equal(status([append(1, ['a'], [1, 10], ok(0, 1)), read(2, ['a'], [2, 3])]), 'ok');
  });

  it('rejects an order of offsets that contradicts real time', () => {
    // Proves real-time order is enforced: a completed append precedes a later one.
    const ops = [append(1, ['a'], [1, 2], ok(1, 1)), append(2, ['b'], [3, 4], ok(0, 1))];
    assert.equal(status(ops), 'violation');
  });

  it('rejects a lost acknowledged append and a stale read', () => {
    // Proves a read after an acknowledged append must see it.
    assert.equal(status([append(1, ['a'], [1, 2], ok(0, 1)), read(2, [], [3, 4])]), 'violation');
    // Two reads in sequence must not go back in time.
    const ops = [append(1, ['a'], [1, 20], ok(0, 1)), read(2, ['a'], [2, 3]), read(2, [], [4, 5])];
    assert.equal(status(ops), 'violation');
  });

  it('rejects a duplicated append (applied twice, seen through offsets or a read)', () => {
    // Proves a retry applied twice is caught: the next append's offset skips.
    const skipped = [append(1, ['a'], [1, 2], ok(0, 1)), append(2, ['b'], [3, 4], ok(2, 1))];
    assert.equal(status(skipped), 'violation');
    const seenTwice = [append(1, ['a'], [1, 2], ok(0, 1)), read(2, ['a', 'a'], [3, 4])];
    assert.equal(status(seenTwice), 'violation');
  });

  it('checks expected offsets both ways', () => {
    // Proves offset_mismatch is accepted only when some linearization makes it true.
    assert.equal(status([append(1, ['a'], [1, 2], mismatch, 0)]), 'violation');
    assert.equal(status([append(1, ['a'], [1, 2], ok(0, 1), 0)]), 'ok');
    assert.equal(status([append(1, ['a'], [1, 2], ok(0, 1), 1)]), 'violation');
    const raced = [append(1, ['a'], [1, 10], ok(0, 1)), append(2, ['b'], [2, 9], mismatch, 0)];
    assert.equal(status(raced), 'ok');
  });

  it('treats an unanswered append as possibly applied, at any time after its call', () => {
    // Proves pending operations may or may not have taken effect, but not before their call.
    assert.equal(status([append(1, ['a'], [1, 0], null), read(2, ['a'], [2, 3])]), 'ok');
    assert.equal(status([append(1, ['a'], [1, 0], null), read(2, [], [2, 3])]), 'ok');
    assert.equal(status([read(2, ['a'], [1, 2]), append(1, ['a'], [3, 0], null)]), 'violation');
    const flicker = [append(1, ['a'], [1, 0], null), read(2, ['a'], [2, 3]), read(2, [], [4, 5])];
    assert.equal(status(flicker), 'violation');
  });

  it('names the operation it could not linearize', () => {
    // Proves the failure report points at the culprit.
    const result = checkLinearizable(streamModel(), [
      append(1, ['x'], [1, 2], ok(0, 1)),
      read(2, [], [3, 4]),
    ]);
    assert.equal(result.status, 'violation');
    if (result.status === 'violation') assert.match(result.stuckAt, /read -> \[\]/);
  });
});

describe('linearizability: registries', () => {
  const create = (
    client: number,
    name: string,
    times: [number, number],
    output: RegistryOutput,
  ): HistoryOp<string, RegistryOutput> => ({
    id: nextId++,
    client,
    input: name,
    output,
    callTime: times[0],
    returnTime: times[1],
  });

  it('accepts unique names with dense ids, and exists after a create', () => {
    // Proves the registry model accepts correct histories, including concurrent creates.
    const ops = [
      create(1, 't1', [1, 10], { kind: 'created', id: 2 }),
      create(2, 't2', [2, 9], { kind: 'created', id: 1 }),
      create(3, 't1', [11, 12], { kind: 'exists' }),
    ];
    assert.equal(checkLinearizable(registryModel(), ops).status, 'ok');
  });

  it('rejects a name created twice, an exists before any create, and skipped ids', () => {
    // Proves the registry model catches duplicates, phantom names and lost creations.
    const twice = [
      create(1, 't1', [1, 2], { kind: 'created', id: 1 }),
      create(2, 't1', [3, 4], { kind: 'created', id: 2 }),
    ];
    assert.equal(checkLinearizable(registryModel(), twice).status, 'violation');
    const phantom = [create(1, 't1', [1, 2], { kind: 'exists' })];
    assert.equal(checkLinearizable(registryModel(), phantom).status, 'violation');
    const skipped = [create(1, 't1', [1, 2], { kind: 'created', id: 2 })];
    assert.equal(checkLinearizable(registryModel(), skipped).status, 'violation');
  });
});

/** Tries every order of `ops` that respects real time; the definition, by brute force. */
function bruteForce<S, I, O>(model: Model<S, I, O>, ops: HistoryOp<I, O>[]): boolean {
  const used = new Array<boolean>(ops.length).fill(false);
  const search = (state: S, done: number): boolean => {
    if (done === ops.length) return true;
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i] as HistoryOp<I, O>;
      if (used[i]) continue;
      // op may go next only if no unused op returned before op was called.
      const blocked = ops.some((other, j) => !used[j] && j !== i && other.returnTime < op.callTime);
      if (blocked) continue;
      const next = model.step(state, op);
      if (next === null) continue;
      used[i] = true;
      if (search(next, done + 1)) return true;
      used[i] = false;
    }
    return false;
  };
  return search(model.init(), 0);
}

/** A small random history: sometimes from a real execution, sometimes with corrupted results. */
function randomHistory(prng: Prng): StreamOp[] {
  const count = prng.intInclusive(1, 6);
  const ops: StreamOp[] = [];
  let length = 0;
  let time = 0;
  for (let i = 0; i < count; i++) {
    const callTime = ++time;
    if (prng.chance(0.3)) {
      const events = Array.from({ length: prng.intInclusive(0, 3) }, (_, k) => `e${k}`);
      ops.push(read(i, events, [callTime, callTime + 1 + prng.below(8)]));
      continue;
    }
    const expected = prng.chance(0.3) ? prng.below(3) : null;
    const matches = expected === null || expected === length;
    const events = [`e${length}`];
    let output: StreamOutput | null = matches ? ok(length, 1) : mismatch;
    if (prng.chance(0.2)) output = prng.chance(0.5) ? ok(prng.below(3), 1) : mismatch;
    if (prng.chance(0.1)) output = null;
    if (matches) length += 1;
    ops.push(append(i, events, [callTime, callTime + 1 + prng.below(8)], output, expected));
  }
  return ops.map((op, i) => ({
    ...op,
    id: i + 1,
    callTime: op.callTime * 2,
    returnTime: op.returnTime * 2 + 1,
  }));
}

describe('linearizability: agreement with brute force', () => {
  it('gives the same verdict as trying every order, on 3000 random small histories', () => {
    // Proves the search (with its memoisation) is exact on this model: no false alarms and
    // no missed violations, compared with the definition applied by exhaustive enumeration.
    const prng = new Prng(20240601);
    let violations = 0;
    for (let i = 0; i < 3000; i++) {
      const ops = randomHistory(prng);
      const expected = bruteForce(streamModel(), ops);
      const actual = checkLinearizable(streamModel(), ops).status;
      assert.equal(actual === 'ok', expected, `history ${i}: ${JSON.stringify(ops)}`);
      if (!expected) violations += 1;
    }
    assert.ok(violations > 300 && violations < 2700, `a mix of verdicts (${violations} failing)`);
  });
});
