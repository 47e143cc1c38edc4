// Proves how the CLI turns JSON input into events and events into output: a JSON array splits
// into the source text of each element (nested arrays, objects, strings with brackets, commas
// and escaped quotes included, large numbers untouched), NDJSON is batched within both the event
// count and the byte limit and rejects a line that is not JSON by its number, and output shows
// JSON data as JSON, other text as a string and non-UTF-8 bytes as base64.

import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { KmbError } from '../core/errors.js';
import {
  eventJsonLine,
  eventsFromDataOption,
  ndjsonBatches,
  splitJsonArray,
} from './cli_events.js';

const decode = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);

describe('event input', () => {
  it('splits a JSON array into the source text of its elements', () => {
    const text = ' [ {"a":[1,{"b":"]"}]}, "x,\\"]", 12345678901234567890 ,[[]], null ] ';
    assert.deepEqual(splitJsonArray(text), [
      '{"a":[1,{"b":"]"}]}',
      '"x,\\"]"',
      '12345678901234567890',
      '[[]]',
      'null',
    ]);
    assert.deepEqual(splitJsonArray('[]'), []);
    assert.deepEqual(eventsFromDataOption(' {"k": 1} ').map(decode), ['{"k": 1}']);
    assert.throws(() => eventsFromDataOption('{nope'), KmbError);
    assert.throws(() => eventsFromDataOption('[]'), KmbError);
  });

  it('batches NDJSON by count and by size', async () => {
    const input = new PassThrough();
    input.end('1\n\n22\r\n333\n4444\n"x"\n');
    const batches = [];
    for await (const batch of ndjsonBatches(input, { eventCountMax: 2, sizeBytesMax: 11 })) {
      batches.push(batch.map(decode));
    }
    assert.deepEqual(batches, [['1', '22'], ['333'], ['4444'], ['"x"']]);
  });

  it('names the first line that is not JSON', async () => {
    const input = new PassThrough();
    input.end('1\n2\n{bad\n');
    const batches = ndjsonBatches(input, { eventCountMax: 10, sizeBytesMax: 1000 });
    await assert.rejects(async () => {
      for await (const _batch of batches) assert.fail('no batch before the bad line is complete');
    }, /stdin line 3 is not valid JSON/);
  });
});

describe('event output', () => {
  const at = { offset: 7, timestamp: '2024-01-01T00:00:00.000000Z' };
  const line = (data: Uint8Array): unknown => JSON.parse(eventJsonLine({ ...at, data }));

  it('prints JSON as JSON, text as a string and bytes as base64', () => {
    const encode = (text: string): Uint8Array => new TextEncoder().encode(text);
    assert.deepEqual(line(encode('{\n  "a": 1\n}')), { ...at, data: { a: 1 } });
    assert.deepEqual(line(encode('hello')), { ...at, data: 'hello' });
    assert.deepEqual(line(encode('')), { ...at, data: '' });
    const binary = line(new Uint8Array([0xc3, 0x28]));
    assert.deepEqual(binary, { ...at, data: 'wyg=', encoding: 'base64' });
    assert.equal(eventJsonLine({ ...at, data: encode('[1,\n2]') }).split('\n').length, 2);
  });
});
