// Proves the bounds of config_limits.ts through loadConfig(): a config file over
// configFileSizeBytesMax is refused before it is parsed (from disk and from an injected reader),
// naming its size and the limit; and a huge unknown key, a huge bad value or a huge line with a
// TOML syntax error is quoted cut to a few dozen characters and "…", so the message stays short.
// The 50 MB case of issue 14 runs against the real server in test/bad_input_limits.test.ts.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { KmbError, errorCodes } from '../core/errors.js';
import { loadConfig } from './config.js';
import { configFileSizeBytesMax, messageQuoteCharCountMax } from './config_limits.js';

/** The message loadConfig() refuses the file text with. */
function refusal(text: string): string {
  try {
    loadConfig({ flags: {}, env: {}, configPath: '/c.toml', readFile: () => text });
  } catch (error) {
    assert.ok(error instanceof KmbError);
    assert.equal(error.code, errorCodes.config_invalid);
    return error.message;
  }
  assert.fail('the configuration was expected to be refused');
}

test('a config file over the size limit is refused before it is parsed', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kmb-config-'));
  try {
    const file = join(dir, 'config.toml');
    const text = `# ${'x'.repeat(configFileSizeBytesMax)}\n`;
    writeFileSync(file, text);
    const pattern = new RegExp(
      `${text.length} bytes, larger than the limit of ${configFileSizeBytesMax}`,
    );
    assert.throws(() => loadConfig({ flags: {}, env: {}, configPath: file }), { message: pattern });
    assert.match(refusal(text), pattern);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('huge keys, values and lines are quoted cut short', () => {
  const cut = `${'k'.repeat(messageQuoteCharCountMax)}…`;
  const unknownKey = refusal(`[server]\n${'k'.repeat(100_000)} = 1\n`);
  assert.ok(unknownKey.includes(`unknown key [server] ${cut} in`), unknownKey.slice(0, 300));
  assert.ok(unknownKey.length < 600, `${unknownKey.length} characters`);
  const topLevel = refusal(`${'k'.repeat(100_000)} = 1\n`);
  assert.ok(topLevel.includes(cut) && topLevel.length < 600, topLevel.slice(0, 300));
  const badValue = refusal(`[server]\naddress = "${'k'.repeat(100_000)}"\n`);
  assert.ok(badValue.includes(`"${'k'.repeat(messageQuoteCharCountMax - 1)}…`), badValue);
  assert.ok(badValue.length < 600, `${badValue.length} characters`);
  const syntax = refusal(`[server]\naddress = "${'k'.repeat(100_000)}\n`);
  assert.ok(syntax.length < 1200, `${syntax.length} characters`);
});
