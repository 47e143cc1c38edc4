// Proves that field values JSON cannot represent never break a log line: bigints, errors (with
// code and cause) and cycles all come out as valid JSON on a single line, in both formats.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { kmbError } from '../core/errors.js';
import { formatJsonLine, formatTextLine, stringifyValue } from './log_format.js';

const timestamp = '2024-01-15T10:30:00.000Z';

test('bigints become numbers when safe and strings when not', () => {
  assert.equal(stringifyValue({ a: 5n, b: 2n ** 64n }), '{"a":5,"b":"18446744073709551616"}');
});

test('errors keep name, message, code and cause', () => {
  const error = new Error('disk gone', { cause: kmbError('storage_io', 'EIO') });
  const parsed = JSON.parse(stringifyValue({ error })) as {
    error: { name: string; message: string; stack: string; cause: unknown };
  };
  assert.equal(parsed.error.name, 'Error');
  assert.equal(parsed.error.message, 'disk gone');
  assert.match(parsed.error.stack, /disk gone/);
  assert.deepEqual(parsed.error.cause, { code: 'KMB_ERR_STORAGE_IO', message: 'EIO' });
});

test('a cycle is replaced by a note, and the line stays one JSON object', () => {
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic['self'] = cyclic;
  const line = formatJsonLine(timestamp, 'error', '"kmb"', 'two\nlines', cyclic);
  assert.equal(line.indexOf('\n'), line.length - 1);
  const record = JSON.parse(line) as { message: string; fields: Record<string, unknown> };
  assert.equal(record.message, 'two\nlines');
  assert.equal(typeof record.fields['unserializable'], 'string');
});

test('text lines quote values that need it and skip undefined ones', () => {
  const fields = { a: 'plain', b: 'has space', c: undefined, d: { x: 1 }, e: true };
  const line = formatTextLine(timestamp, 'debug', 'kmb_net', 'hello', fields);
  assert.equal(line, `${timestamp} DEBUG kmb_net: hello a=plain b="has space" d={"x":1} e=true\n`);
});
