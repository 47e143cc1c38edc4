// Proves that the modules of src/vsr/ import each other without a cycle (issue 15: the replica's
// modules form layers, so each can be read, and tested, from the bottom up). It reads every
// non-test source file of the folder, takes each relative import or re-export (type-only ones
// too: a cycle of types is still a circle a reader has to break), and walks the graph depth
// first; a cycle fails the test with its modules named in order, e.g.
// "backup.ts -> repair.ts -> view_change.ts -> backup.ts".

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const folder = dirname(fileURLToPath(import.meta.url));

/** Source modules only: tests and test support may import anything they exercise. */
function isSource(name: string): boolean {
  return name.endsWith('.ts') && !name.includes('.test.') && !name.includes('.test-support.');
}

/** The sibling modules a file imports (`from './x.js'`), as file names (`x.ts`). */
function siblingImports(text: string): string[] {
  const found = new Set<string>();
  for (const match of text.matchAll(/\bfrom\s+'\.\/([a-z0-9_]+)\.js'/g)) {
    const name = match[1];
    if (name !== undefined) found.add(`${name}.ts`);
  }
  return [...found].sort();
}

/** The first cycle found in the graph, as its modules in order (first repeated last), or null. */
function findCycle(graph: ReadonlyMap<string, readonly string[]>): string[] | null {
  const done = new Set<string>();
  const path: string[] = [];
  const onPath = new Set<string>();
  const visit = (node: string): string[] | null => {
    if (onPath.has(node)) return [...path.slice(path.indexOf(node)), node];
    if (done.has(node)) return null;
    path.push(node);
    onPath.add(node);
    for (const next of graph.get(node) ?? []) {
      const cycle = visit(next);
      if (cycle !== null) return cycle;
    }
    path.pop();
    onPath.delete(node);
    done.add(node);
    return null;
  };
  for (const node of [...graph.keys()].sort()) {
    const cycle = visit(node);
    if (cycle !== null) return cycle;
  }
  return null;
}

test('findCycle names a cycle and accepts a layered graph', () => {
  const circle = new Map([
    ['a.ts', ['b.ts']],
    ['b.ts', ['c.ts']],
    ['c.ts', ['a.ts']],
  ]);
  assert.deepEqual(findCycle(circle), ['a.ts', 'b.ts', 'c.ts', 'a.ts']);
  const layers = new Map([
    ['a.ts', ['b.ts', 'c.ts']],
    ['b.ts', ['c.ts']],
    ['c.ts', []],
  ]);
  assert.equal(findCycle(layers), null);
});

test('src/vsr/ has no import cycle', () => {
  const graph = new Map<string, string[]>();
  for (const name of readdirSync(folder).filter(isSource)) {
    graph.set(name, siblingImports(readFileSync(join(folder, name), 'utf8')));
  }
  assert.ok(graph.size > 10, 'the walk found the replica modules');
  assert.ok(graph.get('replica.ts')?.includes('replica_core.ts'), 'imports are read');
  const cycle = findCycle(graph);
  assert.equal(cycle, null, `import cycle in src/vsr/: ${cycle?.join(' -> ') ?? ''}`);
});
