// Proves kimberlite_assertion_failures_total is real: a child process that installs the
// recorder and then fails an assertion (src/core/assert.ts, never caught) still dies with the
// assertion's error, and leaves a durable record; two such crashes count 2 at the next start;
// an error that is not an assertion is not recorded; an unreadable record counts 0.

import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { assertionRecordFileName, countAssertionFailures } from './assertion_records.js';

const records = fileURLToPath(new URL('./assertion_records.ts', import.meta.url));
const asserts = fileURLToPath(new URL('../core/assert.ts', import.meta.url));

function crash(dataDir: string, failure: string) {
  const script =
    `const { installAssertionRecorder } = await import(${JSON.stringify(records)});\n` +
    `const { assert } = await import(${JSON.stringify(asserts)});\n` +
    `installAssertionRecorder(${JSON.stringify(dataDir)});\n` +
    `setTimeout(() => { ${failure} }, 0);\n`;
  return spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 30_000,
  });
}

test('each assertion failure that kills a process is recorded and counted', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'kmb-assert-'));
  t.after(() => rm(dataDir, { recursive: true, force: true }));
  assert.equal(countAssertionFailures(dataDir), 0);
  for (const expected of [1, 2]) {
    const run = crash(dataDir, "assert(1 + 1 === 3, 'arithmetic holds');");
    assert.notEqual(run.status, 0);
    assert.match(run.stderr, /AssertionError: arithmetic holds/);
    assert.equal(countAssertionFailures(dataDir), expected);
  }
  const record = JSON.parse(await readFile(join(dataDir, assertionRecordFileName), 'utf8')) as {
    last: { message: string };
  };
  assert.match(record.last.message, /arithmetic holds/);
  const other = crash(dataDir, "throw new TypeError('not an assertion');");
  assert.notEqual(other.status, 0);
  assert.equal(countAssertionFailures(dataDir), 2);
  await writeFile(join(dataDir, assertionRecordFileName), '{ torn');
  assert.equal(countAssertionFailures(dataDir), 0);
});
