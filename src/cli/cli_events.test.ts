// Proves how the CLI turns JSON input into events and events into output: a JSON array splits
// into the source text of each element (nested arrays, objects, strings with brackets, commas
// and escaped quotes included, large numbers untouched), NDJSON is batched within both the event
// count and the byte limit and rejects a line that is not JSON by its number, and output shows
// JSON data as JSON, other text as a string and non-UTF-8 bytes as base64. Input that is not
// UTF-8 is refused with the byte offset where it stops being UTF-8 (the offset is checked
// against the platform's strict decoder by property), a U+FFFD in --data (what argv bytes that
// are not UTF-8 become) is refused, an event over the size limit is LIMIT_EXCEEDED, and stdin
// lines split on LF, CR LF and CR however the bytes are chunked.

import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { constants } from '../core/constants.js';
import { KmbError, errorCodes } from '../core/errors.js';
import {
  byteLines,
  eventJsonLine,
  eventsFromDataOption,
  invalidUtf8Offset,
  ndjsonBatches,
  splitJsonArray,
  stdinLineBytesMax,
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

/** Collects every batch, or the error that stopped the reading. */
async function readAll(input: PassThrough): Promise<string[][] | KmbError> {
  const batches: string[][] = [];
  try {
    for await (const batch of ndjsonBatches(input, { eventCountMax: 100, sizeBytesMax: 1e6 })) {
      batches.push(batch.map(decode));
    }
  } catch (error) {
    assert.ok(error instanceof KmbError, String(error));
    return error;
  }
  return batches;
}

describe('input that is not UTF-8, or too large', () => {
  const strict = new TextDecoder('utf-8', { fatal: true });
  const isUtf8 = (bytes: Uint8Array): boolean => {
    try {
      strict.decode(bytes);
      return true;
    } catch {
      return false;
    }
  };

  it('finds the first byte that is not UTF-8, as the strict decoder judges', () => {
    const mostlyText = fc.oneof(
      fc.uint8Array({ maxLength: 16 }),
      fc
        .tuple(fc.string({ unit: 'binary', maxLength: 8 }), fc.uint8Array({ maxLength: 3 }))
        .map(([text, tail]) => Uint8Array.from([...new TextEncoder().encode(text), ...tail])),
    );
    fc.assert(
      fc.property(mostlyText, (bytes) => {
        const offset = invalidUtf8Offset(bytes);
        assert.equal(offset === -1, isUtf8(bytes));
        if (offset === -1) return;
        assert.ok(isUtf8(bytes.subarray(0, offset)), 'everything before it is UTF-8');
        // ...and no character starts there: no 1 to 4 bytes from it are one whole character.
        for (let size = 1; size <= 4 && offset + size <= bytes.length; size++) {
          const piece = bytes.subarray(offset, offset + size);
          assert.ok(!isUtf8(piece) || [...strict.decode(piece)].length !== 1);
        }
      }),
      { numRuns: 5000 },
    );
    for (const bad of [
      [0xc0, 0x80],
      [0xed, 0xa0, 0x80],
      [0xf4, 0x90, 0x80, 0x80],
      [0xe2, 0x82],
    ]) {
      assert.equal(invalidUtf8Offset(Uint8Array.from([0x61, ...bad])), 1, String(bad));
    }
  });

  it('refuses a stdin line that is not UTF-8, naming its line and byte', async () => {
    const input = new PassThrough();
    input.end(Buffer.from([...Buffer.from('"ok"\n"a'), 0xff, ...Buffer.from('"\n')]));
    const result = await readAll(input);
    assert.ok(result instanceof KmbError);
    assert.equal(result.code, errorCodes.invalid_argument);
    assert.equal(result.message, 'stdin line 2 is not valid UTF-8 at byte 2 (counted from 0)');
  });

  it('refuses U+FFFD in --data, and an event over the size limit', () => {
    assert.throws(() => eventsFromDataOption('"é\uFFFD"'), {
      code: errorCodes.invalid_argument,
      message: /^--data is not valid UTF-8 at byte 3 /,
    });
    assert.deepEqual(eventsFromDataOption('"\\ufffd"').map(decode), ['"\\ufffd"']);
    const big = JSON.stringify('x'.repeat(constants.eventSizeBytesMax));
    assert.throws(() => eventsFromDataOption(`[1, ${big}]`), {
      code: errorCodes.limit_exceeded,
      message: `event 1 is ${big.length} bytes, over the limit of ${constants.eventSizeBytesMax} bytes`,
    });
  });

  it('splits lines on LF, CR LF and CR wherever the chunks break', async () => {
    const text = 'a\r\nb\rc\n\nd\r\n\re';
    const expected = ['a', 'b', 'c', '', 'd', '', 'e'];
    for (let cut = 0; cut <= text.length; cut++) {
      const input = new PassThrough();
      input.write(Buffer.from(text.slice(0, cut)));
      input.end(Buffer.from(text.slice(cut)));
      const lines: string[] = [];
      for await (const line of byteLines(input)) lines.push(decode(line));
      assert.deepEqual(lines, expected, `cut at ${cut}`);
    }
  });

  it('refuses a line too long to hold, before reading it whole', async () => {
    const input = new PassThrough();
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    let written = 0;
    while (written <= stdinLineBytesMax) {
      input.write(chunk);
      written += chunk.length;
    }
    input.end();
    const result = await readAll(input);
    assert.ok(result instanceof KmbError);
    assert.equal(result.code, errorCodes.limit_exceeded);
    assert.match(result.message, /^stdin line 1 is longer than/);
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
