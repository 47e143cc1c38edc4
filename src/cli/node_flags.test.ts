// The server's V8 flags are given in two places that cannot import them (the `#!` line of
// bin/kimberlite-server.js, the npm start script) and taken from node_flags.ts everywhere else:
// this holds the first two to the list, and checks which execArgv count as having the flags.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { missingServerNodeFlags, serverNodeFlags } from './node_flags.js';

const read = (path: string): string => readFileSync(new URL(path, import.meta.url), 'utf8');

test('the #! line and npm start pass exactly the expected flags', () => {
  const flags = serverNodeFlags.join(' ');
  const shebang = read('../../bin/kimberlite-server.js').split('\n')[0];
  assert.equal(shebang, `#!/usr/bin/env -S node ${flags}`);
  const scripts = (JSON.parse(read('../../package.json')) as { scripts: Record<string, string> })
    .scripts;
  assert.equal(scripts['start'], `node ${flags} bin/kimberlite-server.js`);
});

test('a flag counts as present with any value, and missing ones are named', () => {
  assert.deepEqual(missingServerNodeFlags([]), [...serverNodeFlags]);
  assert.deepEqual(missingServerNodeFlags(['--inspect']), [...serverNodeFlags]);
  assert.deepEqual(missingServerNodeFlags([...serverNodeFlags]), []);
  assert.deepEqual(missingServerNodeFlags(['--initial-old-space-size=512']), []);
  assert.deepEqual(missingServerNodeFlags(['--initial-old-space-size-x=1']), [...serverNodeFlags]);
});
