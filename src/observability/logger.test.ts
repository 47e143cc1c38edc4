// Proves that the logger writes one JSON object per line with exactly the keys timestamp,
// level, target, message and fields (child bindings merged into fields); that per-module
// levels from KMB_LOG, or RUST_LOG when KMB_LOG is unset, let exactly the right lines through;
// that a disabled level does no work (the clock is never read); that the text format is one
// line; that bad configuration fails with KMB_ERR_CONFIG_INVALID; and that warnRateLimited
// writes the first warning, then at most one per interval with a `suppressed` count.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KmbError } from '../core/errors.js';
import { createLogger, resolveLogConfig, targetForModule, type LoggerOptions } from './logger.js';

interface Capture {
  lines: string[];
  options: LoggerOptions;
  clockReads: () => number;
  advance: (ms: number) => void;
}

function capture(options: LoggerOptions = {}): Capture {
  const lines: string[] = [];
  let nowMs = Date.parse('2024-01-15T10:30:00.000Z');
  let reads = 0;
  return {
    lines,
    clockReads: () => reads,
    advance: (ms) => {
      nowMs += ms;
    },
    options: {
      env: {},
      ...options,
      destination: { write: (line: string) => lines.push(line) },
      wallClockMs: () => (reads++, nowMs),
      monotonicMs: () => nowMs,
    },
  };
}

function records(lines: readonly string[]): Record<string, unknown>[] {
  const text = lines.join('');
  assert.ok(text.endsWith('\n'));
  return text
    .slice(0, -1)
    .split('\n')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

test('JSON lines have exactly the spec shape, with bindings inside fields', () => {
  const out = capture();
  const root = createLogger(out.options);
  const vsr = root.child({ node_id: 1 }, 'kimberlite_vsr').child({ view: 5 });
  vsr.info('Became leader', { commit_index: 12345 });
  root.warn('no fields');
  assert.equal(out.lines.length, 2);
  const [leader, plain] = records(out.lines);
  assert.deepEqual(leader, {
    timestamp: '2024-01-15T10:30:00.000Z',
    level: 'INFO',
    target: 'kmb_consensus',
    message: 'Became leader',
    fields: { node_id: 1, view: 5, commit_index: 12345 },
  });
  assert.deepEqual(Object.keys(leader ?? {}), [
    'timestamp',
    'level',
    'target',
    'message',
    'fields',
  ]);
  assert.deepEqual(plain, {
    timestamp: '2024-01-15T10:30:00.000Z',
    level: 'WARN',
    target: 'kmb',
    message: 'no fields',
    fields: {},
  });
});

test('modules map to their display targets', () => {
  assert.equal(targetForModule('kimberlite'), 'kmb');
  assert.equal(targetForModule('kimberlite_server'), 'kmb_server');
  assert.equal(targetForModule('kimberlite_vsr'), 'kmb_consensus');
  assert.equal(targetForModule('kimberlite_vsr::view_change'), 'kmb_consensus');
  assert.equal(targetForModule('kimberlite_storage'), 'kmb_storage');
  assert.equal(targetForModule('kimberlite_net'), 'kmb_net');
  assert.equal(targetForModule('kimberlite_kernel'), 'kmb_kernel');
});

function levelsSeen(options: LoggerOptions): string[] {
  const out = capture(options);
  const root = createLogger(out.options);
  const vsr = root.child({}, 'kimberlite_vsr');
  const storage = root.child({}, 'kimberlite_storage');
  for (const logger of [vsr, storage]) {
    logger.trace('t');
    logger.debug('d');
    logger.info('i');
  }
  return records(out.lines).map(
    (record) => `${String(record['target'])}:${String(record['level'])}`,
  );
}

test('kimberlite=info,kimberlite_vsr=debug lets vsr debug through but not storage debug', () => {
  const seen = levelsSeen({ env: { KMB_LOG: 'kimberlite=info,kimberlite_vsr=debug' } });
  assert.deepEqual(seen, ['kmb_consensus:DEBUG', 'kmb_consensus:INFO', 'kmb_storage:INFO']);
});

test('RUST_LOG is honoured when KMB_LOG is unset, and KMB_LOG wins when both are', () => {
  const rust = levelsSeen({ env: { RUST_LOG: 'kimberlite_vsr=debug,kimberlite_storage=info' } });
  assert.deepEqual(rust, ['kmb_consensus:DEBUG', 'kmb_consensus:INFO', 'kmb_storage:INFO']);
  const both = levelsSeen({ env: { KMB_LOG: 'trace', RUST_LOG: 'error' } });
  assert.equal(both.length, 6);
  const config = resolveLogConfig({ env: { RUST_LOG: 'warn' }, defaultDirectives: 'debug' });
  assert.equal(config.directivesSource, 'RUST_LOG');
  assert.deepEqual(resolveLogConfig({ env: {} }).directives, { defaultLevel: 'info', modules: [] });
});

test('a disabled level does no work and enabled() reports it', () => {
  const out = capture({ env: { KMB_LOG: 'warn' } });
  const logger = createLogger(out.options);
  logger.info('skipped', { big: 'x' });
  logger.debug('skipped');
  assert.equal(out.clockReads(), 0);
  assert.equal(out.lines.length, 0);
  assert.equal(logger.enabled('info'), false);
  assert.equal(logger.enabled('warn'), true);
  assert.equal(logger.level, 'warn');
});

test('text format writes one readable line per record', () => {
  const out = capture({ env: { RUST_LOG_FORMAT: 'text' } });
  const logger = createLogger(out.options).child({ node_id: 1 }, 'kimberlite_vsr');
  logger.info('Became\nleader', { view: 5, peer: 'node 2' });
  const expected = 'Became\\nleader node_id=1 view=5 peer="node 2"';
  assert.deepEqual(out.lines, [`2024-01-15T10:30:00.000Z  INFO kmb_consensus: ${expected}\n`]);
});

test('bad directives or formats fail with KMB_ERR_CONFIG_INVALID', () => {
  const isConfigError = (source: string) => (error: unknown) =>
    error instanceof KmbError &&
    error.code === 'KMB_ERR_CONFIG_INVALID' &&
    error.message.startsWith(source);
  assert.throws(
    () => createLogger({ env: { RUST_LOG: 'kimberlite=loud' } }),
    isConfigError('RUST_LOG'),
  );
  assert.throws(
    () => createLogger({ env: { KMB_LOG_FORMAT: 'xml' } }),
    isConfigError('KMB_LOG_FORMAT'),
  );
});

test('warnRateLimited writes the first, then one per interval with a suppressed count', () => {
  const out = capture();
  const logger = createLogger(out.options).child({ node_id: 0 }, 'kimberlite_net');
  logger.warnRateLimited('peer_down:2', 1000, 'Peer unreachable', { peer: 2 });
  out.advance(100);
  logger.warnRateLimited('peer_down:2', 1000, 'Peer unreachable', { peer: 2 });
  logger.warnRateLimited('peer_down:2', 1000, 'Peer unreachable', { peer: 2 });
  out.advance(1000);
  logger.warnRateLimited('peer_down:2', 1000, 'Peer unreachable', { peer: 2 });
  const fields = records(out.lines).map((record) => record['fields']);
  assert.deepEqual(fields, [
    { node_id: 0, peer: 2, suppressed: 0 },
    { node_id: 0, peer: 2, suppressed: 2 },
  ]);
});

test('rateLimited honours the level threshold before spending a rate-limit slot', () => {
  // Proves a disabled level neither writes nor counts (the key stays fresh for when the level
  // is enabled), and an enabled one is limited like warnRateLimited, at its own level.
  const out = capture({ directives: 'kimberlite=info,kimberlite_vsr=debug' });
  const root = createLogger(out.options);
  const quiet = root.child({}, 'kimberlite_storage');
  const loud = root.child({}, 'kimberlite_vsr');
  quiet.rateLimited('debug', 'repair', 1000, 'Repair requested');
  loud.rateLimited('debug', 'repair', 1000, 'Repair requested', { op: 1 });
  loud.rateLimited('debug', 'repair', 1000, 'Repair requested', { op: 2 });
  out.advance(1000);
  loud.rateLimited('error', 'repair', 1000, 'Checksum mismatch', { op: 3 });
  const got = records(out.lines).map((r) => [r['level'], r['target'], r['fields']]);
  assert.deepEqual(got, [
    ['DEBUG', 'kmb_consensus', { op: 1, suppressed: 0 }],
    ['ERROR', 'kmb_consensus', { op: 3, suppressed: 1 }],
  ]);
});
