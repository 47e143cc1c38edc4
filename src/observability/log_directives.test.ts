// Proves that KMB_LOG / RUST_LOG directive strings parse as documented (bare default level,
// module=level, any letter case, trailing commas, last one wins), that bad ones fail with
// KMB_ERR_CONFIG_INVALID naming their source, and that the most specific covering module wins
// when a module's level is resolved.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KmbError } from '../core/errors.js';
import { levelForModule, moduleCovers, parseLogDirectives } from './log_directives.js';

test('parses a bare level and module directives', () => {
  assert.deepEqual(parseLogDirectives('kimberlite=info, kimberlite_vsr=DEBUG,'), {
    modules: [
      { module: 'kimberlite', level: 'info' },
      { module: 'kimberlite_vsr', level: 'debug' },
    ],
  });
  assert.deepEqual(parseLogDirectives('debug'), { defaultLevel: 'debug', modules: [] });
  assert.deepEqual(parseLogDirectives('warn,kimberlite_vsr::view_change=trace,kimberlite=off'), {
    defaultLevel: 'warn',
    modules: [
      { module: 'kimberlite_vsr::view_change', level: 'trace' },
      { module: 'kimberlite', level: 'off' },
    ],
  });
  assert.deepEqual(parseLogDirectives('a=info,a=error').modules, [{ module: 'a', level: 'error' }]);
  assert.deepEqual(parseLogDirectives(''), { modules: [] });
});

test('rejects what it cannot read, naming the source', () => {
  const bad = ['inof', 'kimberlite=loud', 'kimber lite=info', '=info', 'kimberlite', 'a=info/x'];
  for (const text of bad) {
    assert.throws(
      () => parseLogDirectives(text, 'KMB_LOG'),
      (error: unknown) =>
        error instanceof KmbError &&
        error.code === 'KMB_ERR_CONFIG_INVALID' &&
        error.message.startsWith('KMB_LOG: '),
      text,
    );
  }
  assert.throws(() => parseLogDirectives('x'.repeat(5000)), /longer than/);
});

test('a directive covers its module and the modules under it only', () => {
  assert.equal(moduleCovers('kimberlite', 'kimberlite'), true);
  assert.equal(moduleCovers('kimberlite', 'kimberlite_vsr'), true);
  assert.equal(moduleCovers('kimberlite_vsr', 'kimberlite_vsr::view_change'), true);
  assert.equal(moduleCovers('kimberlite_v', 'kimberlite_vsr'), false);
  assert.equal(moduleCovers('kimberlite_vsr', 'kimberlite_storage'), false);
});

test('the most specific directive wins, then the bare level, then the fallback', () => {
  const directives = parseLogDirectives('kimberlite=info,kimberlite_vsr=debug');
  assert.equal(levelForModule(directives, 'kimberlite_vsr', 'warn'), 'debug');
  assert.equal(levelForModule(directives, 'kimberlite_vsr::repair', 'warn'), 'debug');
  assert.equal(levelForModule(directives, 'kimberlite_storage', 'warn'), 'info');
  assert.equal(levelForModule(directives, 'other', 'warn'), 'warn');
  const withDefault = parseLogDirectives('kimberlite_vsr=trace,error');
  assert.equal(levelForModule(withDefault, 'kimberlite_storage', 'info'), 'error');
  assert.equal(levelForModule(withDefault, 'kimberlite_vsr', 'info'), 'trace');
});
