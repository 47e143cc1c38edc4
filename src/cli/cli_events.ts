// Events as the CLI takes them in and prints them out. Input is JSON: a --data value is one
// event, or, when it is a JSON array, one event per element; on stdin (--data -) each non-blank
// line is one event (NDJSON). An event's bytes are the UTF-8 of its JSON text exactly as written
// (trimmed), never re-serialised, so large numbers and key order survive. Output renders an
// event's data as the JSON it holds when it holds JSON, else as a string, or as base64 with
// "encoding": "base64" when the bytes are not UTF-8 text.
//
// Input must be UTF-8: stdin is read as bytes and a line that is not UTF-8 is refused naming its
// line and byte offset, never stored as U+FFFD. A --data argument arrives already decoded (Node
// turns bytes of argv that are not UTF-8 into U+FFFD), so a U+FFFD in it is refused with the
// same code; an event that really holds U+FFFD can spell it as the JSON escape \ufffd.
// An event over eventSizeBytesMax is refused as the SDK and the server would (LIMIT_EXCEEDED).

import type { Readable } from 'node:stream';
import { constants } from '../core/constants.js';
import { errorCodes } from '../core/errors.js';
import { eventFieldName, fieldLimitMessage } from '../kernel/kernel.js';
import { UsageError } from './cli_io.js';

/**
 * The longest stdin line kept in memory while looking for its end: an event of
 * eventSizeBytesMax with as many bytes again of surrounding whitespace. Longer lines are refused
 * before they are read whole, so a stream without line breaks cannot fill the memory.
 */
export const stdinLineBytesMax = 2 * constants.eventSizeBytesMax;

const textEncoder = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const replacementCharacter = '\uFFFD';

/**
 * The offset of the first byte that does not begin a well-formed UTF-8 sequence (RFC 3629: no
 * overlong forms, no surrogates, nothing past U+10FFFF), or -1 when all of `bytes` is UTF-8.
 */
export function invalidUtf8Offset(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const lead = bytes[i]!;
    if (lead < 0x80) {
      i += 1;
      continue;
    }
    const tail = lead >= 0xf0 ? 3 : lead >= 0xe0 ? 2 : 1;
    if (lead < 0xc2 || lead > 0xf4 || i + tail >= bytes.length) return i;
    const second = bytes[i + 1]!;
    const secondMin = lead === 0xe0 ? 0xa0 : lead === 0xf0 ? 0x90 : 0x80;
    const secondMax = lead === 0xed ? 0x9f : lead === 0xf4 ? 0x8f : 0xbf;
    if (second < secondMin || second > secondMax) return i;
    for (let k = 2; k <= tail; k++) {
      const next = bytes[i + k]!;
      if (next < 0x80 || next > 0xbf) return i;
    }
    i += tail + 1;
  }
  return -1;
}

/** The text of some bytes, or a UsageError naming where they stop being UTF-8. */
function utf8Text(bytes: Uint8Array, what: string): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    const offset = invalidUtf8Offset(bytes);
    throw new UsageError(`${what} is not valid UTF-8 at byte ${offset} (counted from 0)`);
  }
}

/** Refuses an event over eventSizeBytesMax, with the SDK's message (index in its --data). */
function checkEventSize(event: Uint8Array, index: number): Uint8Array {
  const max = constants.eventSizeBytesMax;
  if (event.length <= max) return event;
  const message = fieldLimitMessage(eventFieldName(index), event.length, max);
  throw new UsageError(message, errorCodes.limit_exceeded);
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** The end (exclusive) of the JSON string that starts at `start` (a double quote). */
function stringEnd(text: string, start: number): number {
  let i = start + 1;
  while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
  return i + 1;
}

/**
 * The source text of each element of a JSON array, given text already known to be a valid
 * JSON array. Depth is tracked outside strings; a top-level comma ends an element.
 */
export function splitJsonArray(arrayText: string): string[] {
  const text = arrayText.trim();
  const elements: string[] = [];
  let depth = 0;
  let start = 1;
  for (let i = 1; i < text.length; i++) {
    const char = text[i];
    if (char === '"') {
      i = stringEnd(text, i) - 1;
    } else if (char === '[' || char === '{') {
      depth += 1;
    } else if ((char === ']' || char === '}') && depth > 0) {
      depth -= 1;
    } else if ((char === ',' && depth === 0) || (char === ']' && depth === 0)) {
      const element = text.slice(start, i).trim();
      if (element.length > 0) elements.push(element);
      start = i + 1;
    }
  }
  return elements;
}

/** The events of one --data value. */
export function eventsFromDataOption(value: string): Uint8Array[] {
  const replaced = value.indexOf(replacementCharacter);
  if (replaced >= 0) {
    const offset = textEncoder.encode(value.slice(0, replaced)).length;
    throw new UsageError(
      `--data is not valid UTF-8 at byte ${offset} (counted from 0): it holds U+FFFD, what ` +
        'bytes that are not UTF-8 become; to store U+FFFD itself write the JSON escape \\ufffd',
    );
  }
  const text = value.trim();
  if (!isJson(text)) {
    throw new UsageError(`--data is not valid JSON: ${JSON.stringify(value.slice(0, 80))}`);
  }
  const texts = text.startsWith('[') ? splitJsonArray(text) : [text];
  if (texts.length === 0) throw new UsageError('--data is an empty array: no events to append');
  return texts.map((element, index) => checkEventSize(textEncoder.encode(element), index));
}

/** Limits on one batch of events read from stdin; each batch is one append. */
export interface BatchLimits {
  readonly eventCountMax: number;
  /** Bytes of event data (plus 4 bytes of length each) one batch may carry. */
  readonly sizeBytesMax: number;
}

/**
 * The lines of a byte stream, as bytes: a line ends at LF, CR LF or a lone CR (as readline
 * splits them). A line longer than stdinLineBytesMax is refused by its number.
 */
export async function* byteLines(input: Readable): AsyncGenerator<Uint8Array, void, undefined> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let lineNumber = 1;
  let afterCr = false;
  const tooLong = (): UsageError => {
    const max = stdinLineBytesMax;
    const message = `stdin line ${lineNumber} is longer than ${max} bytes (twice the event limit)`;
    return new UsageError(message, errorCodes.limit_exceeded);
  };
  for await (const chunk of input as AsyncIterable<Buffer | string>) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    if (bytes.length === 0) continue;
    let start = afterCr && bytes[0] === 0x0a ? 1 : 0;
    afterCr = false;
    for (let i = start; i < bytes.length; i++) {
      const byte = bytes[i];
      if (byte !== 0x0a && byte !== 0x0d) continue;
      if (pendingBytes + i - start > stdinLineBytesMax) throw tooLong();
      pending.push(bytes.subarray(start, i));
      yield Buffer.concat(pending);
      pending = [];
      pendingBytes = 0;
      lineNumber += 1;
      if (byte === 0x0d && i + 1 < bytes.length && bytes[i + 1] === 0x0a) i += 1;
      else if (byte === 0x0d && i + 1 === bytes.length) afterCr = true;
      start = i + 1;
    }
    if (start < bytes.length) {
      pending.push(bytes.subarray(start));
      pendingBytes += bytes.length - start;
      if (pendingBytes > stdinLineBytesMax) throw tooLong();
    }
  }
  if (pendingBytes > 0) yield Buffer.concat(pending);
}

/**
 * Reads NDJSON events from a stream in batches within the limits. Blank lines are skipped; a
 * line that is not UTF-8, not JSON or over the event size limit stops the reading with a
 * UsageError naming its line number.
 */
export async function* ndjsonBatches(
  input: Readable,
  limits: BatchLimits,
): AsyncGenerator<Uint8Array[], void, undefined> {
  let batch: Uint8Array[] = [];
  let batchSizeBytes = 0;
  let lineNumber = 0;
  for await (const line of byteLines(input)) {
    lineNumber += 1;
    const text = utf8Text(line, `stdin line ${lineNumber}`).trim();
    if (text.length === 0) continue;
    if (!isJson(text)) throw new UsageError(`stdin line ${lineNumber} is not valid JSON`);
    const event = textEncoder.encode(text);
    if (event.length > constants.eventSizeBytesMax) {
      const max = constants.eventSizeBytesMax;
      const message = fieldLimitMessage(`stdin line ${lineNumber}`, event.length, max);
      throw new UsageError(message, errorCodes.limit_exceeded);
    }
    const sizeBytes = event.length + 4;
    const full =
      batch.length >= limits.eventCountMax || batchSizeBytes + sizeBytes > limits.sizeBytesMax;
    if (full && batch.length > 0) {
      yield batch;
      batch = [];
      batchSizeBytes = 0;
    }
    batch.push(event);
    batchSizeBytes += sizeBytes;
  }
  if (batch.length > 0) yield batch;
}

/** An event's data for output: its JSON text, a JSON string, or base64 of its bytes. */
export function renderData(data: Uint8Array): { json: string; base64: boolean } {
  let text: string;
  try {
    text = strictUtf8.decode(data);
  } catch {
    return { json: JSON.stringify(Buffer.from(data).toString('base64')), base64: true };
  }
  const trimmed = text.trim();
  // Line breaks in valid JSON can only be whitespace between tokens, so folding them keeps the
  // value and keeps one event per output line.
  if (trimmed.length > 0 && isJson(trimmed)) {
    return { json: trimmed.replace(/[\r\n]+/g, ' '), base64: false };
  }
  return { json: JSON.stringify(text), base64: false };
}

/** One event as a JSON line: {"offset","timestamp","data"} (+ "encoding" for binary data). */
export function eventJsonLine(event: {
  offset: number;
  timestamp: string;
  data: Uint8Array;
}): string {
  const { json, base64 } = renderData(event.data);
  const encoding = base64 ? ',"encoding":"base64"' : '';
  const head = `{"offset":${event.offset},"timestamp":${JSON.stringify(event.timestamp)}`;
  return `${head},"data":${json}${encoding}}\n`;
}

/** One event as a readable line: offset, timestamp, data. */
export function eventTextLine(event: {
  offset: number;
  timestamp: string;
  data: Uint8Array;
}): string {
  const { json, base64 } = renderData(event.data);
  const shown = base64 ? `base64:${JSON.parse(json) as string}` : json;
  return `${event.offset}  ${event.timestamp}  ${shown}\n`;
}
