// The format of the golden protocol transcripts in testdata/protocol/ (testdata/README.md), and
// the two directions between a frame's bytes and its "meaning": plain JSON that a person can read
// and that the real codecs turn back into the same bytes. Used by src/net/golden.test.ts (which
// reads the files) and scripts/golden.mjs (which writes and checks them).
//
// A transcript is lines. `#` starts a comment; `protocol client|replica` names the codec; each
// `message <title>` starts a message, followed by its frame as `hex OOOO  <bytes>` lines (OOOO the
// offset of the line's first byte; the frame header's line ends with `| <header in words>`) and
// its meaning as `json <text>` lines. Invariants kept here: rendering then parsing gives back the
// same messages; the header words are derived from the bytes, so a parsed file is checked against
// them; a meaning has exactly one encoding (bytes become "hex:…" or "utf8:…" strings, nested
// encodings become {"kernel_command"}, {"kernel_result"} and {"batch"} objects, and a prepare
// becomes {"header", "body"}).

import { Reader } from '../core/binary.js';
import { fromHex, toHex } from '../core/checksum.js';
import { makePrepare } from '../core/header.js';
import type { Prepare, PrepareHeaderFields } from '../core/header.js';
import { decodeCommand, decodeResult, encodeCommand, encodeResult } from '../kernel/kernel.js';
import type { Command, CommandResult } from '../kernel/kernel.js';
import { decodeBatch, encodeBatch } from '../vsr/batch.js';
import type { Request } from '../vsr/batch.js';
import type { ReplicaMessage } from '../vsr/message.js';
import { decodeMessage, encodeMessageFrame, messageKind } from './client_protocol.js';
import type { ClientMessage } from './client_protocol.js';
import { FrameDecoder, encodeFrame, frameHeaderSizeBytes, frameMagic } from './frame.js';
import { decodeReplicaMessage, encodeReplicaMessage, replicaMessageTag } from './replica_codec.js';
import { decodeReplicaHello, encodeReplicaHello, replicaFrameKind } from './replica_bus.js';
import type { ReplicaHello } from './replica_bus.js';

export type Protocol = 'client' | 'replica';

/** JSON values, the shape of a meaning. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** A replica-protocol frame: the bus's hello, or a replica message. */
export type ReplicaFrame =
  { readonly kind: 'replica_hello'; readonly hello: ReplicaHello } | ReplicaMessage;

export interface TranscriptMessage {
  readonly title: string;
  /** Explanation lines (without the leading `# `). */
  readonly notes: readonly string[];
  readonly bytes: Uint8Array;
  readonly meaning: Json;
}

export interface Transcript {
  /** Comment lines at the top of the file (without the leading `# `). */
  readonly header: readonly string[];
  readonly protocol: Protocol;
  readonly messages: readonly TranscriptMessage[];
}

const bytesPerLine = 16;
const bytesPerGroup = 4;
const hexPrefix = 'hex:';
const utf8Prefix = 'utf8:';
const textDecoder = new TextDecoder('utf-8', { fatal: true });
const textEncoder = new TextEncoder();

// ---- bytes <-> strings ------------------------------------------------------------------------

/** Bytes as "utf8:text" when printable UTF-8 that encodes back the same, else as "hex:…". */
export function bytesMeaning(bytes: Uint8Array): string {
  let text: string | null = null;
  try {
    text = bytes.length > 0 ? textDecoder.decode(bytes) : null;
  } catch {
    text = null;
  }
  if (text !== null && !hasControlCharacter(text)) {
    if (toHex(textEncoder.encode(text)) === toHex(bytes)) return utf8Prefix + text;
  }
  return hexPrefix + toHex(bytes);
}

function hasControlCharacter(text: string): boolean {
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}

function bytesFromMeaning(value: string): Uint8Array | null {
  if (value.startsWith(hexPrefix)) return Uint8Array.from(fromHex(value.slice(hexPrefix.length)));
  if (value.startsWith(utf8Prefix)) return textEncoder.encode(value.slice(utf8Prefix.length));
  return null;
}

// ---- message -> meaning -----------------------------------------------------------------------

/** A value of a decoded message as JSON; `key` selects the nested decodings. */
function toJson(value: unknown, key: string): Json {
  if (value instanceof Uint8Array) return bytesToJson(value, key);
  if (value === null || typeof value === 'boolean' || typeof value === 'number') return value;
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return value.map((item) => toJson(item, ''));
  if (typeof value === 'object') {
    if (key === 'prepare') return prepareToJson(value as Prepare);
    const out: { [key: string]: Json } = {};
    for (const [name, field] of Object.entries(value)) {
      if (field !== undefined) out[name] = toJson(field, name);
    }
    return out;
  }
  throw new Error(`no meaning for a ${typeof value} at ${key}`);
}

/** A request body holds a kernel command, a reply's result the kernel's result (when not empty). */
function bytesToJson(bytes: Uint8Array, key: string): Json {
  if (bytes.length > 0 && key === 'body')
    return { kernel_command: toJson(decodeCommand(bytes), '') };
  if (bytes.length > 0 && key === 'result')
    return { kernel_result: toJson(decodeResult(bytes), '') };
  return bytesMeaning(bytes);
}

function prepareToJson(prepare: Prepare): Json {
  const body = prepare.body;
  return {
    header: toJson(prepare.header, ''),
    body: body.length > 0 ? { batch: toJson(decodeBatch(body), '') } : bytesMeaning(body),
  };
}

// ---- meaning -> message -----------------------------------------------------------------------

function isObject(value: Json): value is { [key: string]: Json } {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function onlyKey(value: { [key: string]: Json }, name: string): Json | undefined {
  const keys = Object.keys(value);
  return keys.length === 1 && keys[0] === name ? value[name] : undefined;
}

/** The inverse of toJson: bytes strings back to bytes, nested meanings back to their encoding. */
function fromJson(value: Json, key: string): unknown {
  if (typeof value === 'string') return bytesFromMeaning(value) ?? value;
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((item) => fromJson(item, ''));
  if (key === 'prepare') return prepareFromJson(value);
  const command = onlyKey(value, 'kernel_command');
  if (command !== undefined) return encodeCommand(fromJson(command, '') as Command);
  const result = onlyKey(value, 'kernel_result');
  if (result !== undefined) return encodeResult(fromJson(result, '') as CommandResult);
  const batch = onlyKey(value, 'batch');
  if (batch !== undefined) return encodeBatch(fromJson(batch, '') as Request[]);
  const out: Record<string, unknown> = {};
  for (const [name, field] of Object.entries(value)) out[name] = fromJson(field, name);
  return out;
}

/** A prepare made again from its header fields and body: its checksums are recomputed. */
function prepareFromJson(value: { [key: string]: Json }): Prepare {
  const header = value['header'];
  const body = value['body'];
  if (header === undefined || !isObject(header) || body === undefined) {
    throw new Error('a prepare has a header and a body');
  }
  const fields = fromJson(header, '') as PrepareHeaderFields;
  return makePrepare(fields, fromJson(body, 'prepare_body') as Uint8Array);
}

// ---- frames -----------------------------------------------------------------------------------

/** The single frame in `bytes`; throws when they hold anything else. */
function onlyFrame(bytes: Uint8Array): { kind: number; body: Uint8Array } {
  const { frames, error } = new FrameDecoder().push(Uint8Array.from(bytes));
  if (error !== null) throw new Error(`frame error ${error.code}: ${error.message}`);
  const frame = frames[0];
  if (frames.length !== 1 || frame === undefined) {
    throw new Error(`expected exactly one whole frame, got ${frames.length}`);
  }
  return frame;
}

/** Decodes one frame of `protocol` with the real codecs, to its meaning. */
export function frameToMeaning(protocol: Protocol, bytes: Uint8Array): Json {
  const frame = onlyFrame(bytes);
  if (protocol === 'client') return toJson(decodeMessage(frame.kind, frame.body), '');
  if (frame.kind === replicaFrameKind.hello) {
    return toJson({ kind: 'replica_hello', hello: decodeReplicaHello(frame.body) }, '');
  }
  if (frame.kind !== replicaFrameKind.message || frame.body.length < 1) {
    throw new Error(`frame kind ${frame.kind} is not a replica frame`);
  }
  return toJson(decodeReplicaMessage(frame.body[0]!, frame.body.subarray(1)), '');
}

/** Encodes a meaning with the real codecs, to its frame. */
export function meaningToFrame(protocol: Protocol, meaning: Json): Uint8Array {
  return messageToFrame(protocol, fromJson(meaning, '') as ClientMessage | ReplicaFrame);
}

/** Encodes a message with the real codecs, to its frame. */
export function messageToFrame(
  protocol: Protocol,
  message: ClientMessage | ReplicaFrame,
): Uint8Array {
  if (protocol === 'client') return encodeMessageFrame(message as ClientMessage);
  const frame = message as ReplicaFrame;
  if (frame.kind === 'replica_hello') {
    return encodeFrame(replicaFrameKind.hello, encodeReplicaHello(frame.hello));
  }
  const { tag, body } = encodeReplicaMessage(frame);
  return encodeFrame(replicaFrameKind.message, body, tag);
}

/** The meaning of a message built in code (the generator's input). */
export function messageMeaning(message: ClientMessage | ReplicaFrame): Json {
  return toJson(message, '');
}

const tagNames = new Map<number, string>(
  Object.entries(replicaMessageTag).map(([name, tag]): [number, string] => [tag, name]),
);
const kindNames = new Map<number, string>([
  ...Object.entries(messageKind).map(([name, kind]): [number, string] => [kind, name]),
  [replicaFrameKind.hello, 'replica_hello'],
  [replicaFrameKind.message, 'replica_message'],
]);

/** The frame header in words: the note on a transcript's first hex line of a message. */
export function describeFrameHeader(bytes: Uint8Array): string {
  if (bytes.length < frameHeaderSizeBytes) return 'short frame';
  const reader = new Reader(bytes.subarray(0, frameHeaderSizeBytes));
  const magic = reader.u32();
  const sizeBytes = reader.u32();
  const checksum = reader.u32();
  const kind = reader.u8();
  const magicText = magic === frameMagic ? 'KMBF' : `0x${magic.toString(16)}`;
  const kindText = `${kind} ${kindNames.get(kind) ?? 'unknown'}`;
  const crcText = checksum.toString(16).padStart(8, '0');
  const tagByte = bytes[frameHeaderSizeBytes] ?? -1;
  const tag =
    kind === replicaFrameKind.message ? `, tag ${tagByte} ${tagNames.get(tagByte) ?? '?'}` : '';
  return `magic ${magicText}, size ${sizeBytes}, crc32 ${crcText}, kind ${kindText}${tag}`;
}

// ---- the text format --------------------------------------------------------------------------

function hexLines(bytes: Uint8Array): string[] {
  const lines: string[] = [];
  for (let offset = 0; offset < bytes.length; offset += bytesPerLine) {
    const groups: string[] = [];
    for (let at = offset; at < Math.min(offset + bytesPerLine, bytes.length); at += bytesPerGroup) {
      groups.push(toHex(bytes.subarray(at, Math.min(at + bytesPerGroup, offset + bytesPerLine))));
    }
    const prefix = `hex ${offset.toString(16).padStart(4, '0')}  ${groups.join(' ')}`;
    lines.push(offset === 0 ? `${prefix.padEnd(48)}| ${describeFrameHeader(bytes)}` : prefix);
  }
  return lines;
}

/** A transcript as text (the file's content). */
export function renderTranscript(transcript: Transcript): string {
  const lines = transcript.header.map((line) => `# ${line}`.trimEnd());
  lines.push('', `protocol ${transcript.protocol}`);
  for (const message of transcript.messages) {
    lines.push('', `message ${message.title}`);
    for (const note of message.notes) lines.push(`# ${note}`.trimEnd());
    lines.push(...hexLines(message.bytes));
    for (const line of JSON.stringify(message.meaning, null, 2).split('\n')) {
      lines.push(`json ${line}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

interface Draft {
  title: string;
  notes: string[];
  hex: string[];
  json: string[];
  line: number;
}

/** Parses a transcript; throws with the line number on anything malformed. */
export function parseTranscript(text: string): Transcript {
  const header: string[] = [];
  let protocol: Protocol | null = null;
  const drafts: Draft[] = [];
  text.split('\n').forEach((raw, index) => {
    const line = raw.trimEnd();
    const where = `line ${index + 1}`;
    const draft = drafts[drafts.length - 1];
    if (line === '') return;
    if (line.startsWith('#')) {
      const comment = line.replace(/^# ?/, '');
      if (draft === undefined) header.push(comment);
      else draft.notes.push(comment);
    } else if (line.startsWith('protocol ')) {
      const name = line.slice('protocol '.length);
      if (protocol !== null || (name !== 'client' && name !== 'replica')) {
        throw new Error(`${where}: protocol must be named once, as client or replica`);
      }
      protocol = name;
    } else if (line.startsWith('message ')) {
      drafts.push({
        title: line.slice('message '.length),
        notes: [],
        hex: [],
        json: [],
        line: index + 1,
      });
    } else if (draft === undefined) {
      throw new Error(`${where}: "${line.slice(0, 20)}" before the first message`);
    } else if (line.startsWith('hex ')) {
      if (draft.json.length > 0) throw new Error(`${where}: hex after json`);
      draft.hex.push(line.slice('hex '.length));
    } else if (line.startsWith('json ')) {
      draft.json.push(line.slice('json '.length));
    } else {
      throw new Error(`${where}: unknown line "${line.slice(0, 20)}"`);
    }
  });
  if (protocol === null) throw new Error('the transcript names no protocol');
  return { header, protocol, messages: drafts.map(finishMessage) };
}

function finishMessage(draft: Draft): TranscriptMessage {
  const where = `message at line ${draft.line}`;
  const chunks: string[] = [];
  let note: string | null = null;
  for (const [index, line] of draft.hex.entries()) {
    const match = /^([0-9a-f]{4}) {2}([0-9a-f ]+?)\s*(?:\| (.*))?$/.exec(line);
    if (match === null) throw new Error(`${where}: malformed hex line "${line}"`);
    const offset = Number.parseInt(match[1]!, 16);
    if (offset !== index * bytesPerLine) throw new Error(`${where}: hex offset ${match[1]}`);
    if (index === 0) note = match[3] ?? null;
    else if (match[3] !== undefined) throw new Error(`${where}: a note after the first hex line`);
    chunks.push(match[2]!.replace(/ /g, ''));
  }
  const hex = chunks.join('');
  if (hex.length === 0 || hex.length % 2 !== 0) throw new Error(`${where}: no whole bytes`);
  const bytes = Uint8Array.from(fromHex(hex));
  if (note !== describeFrameHeader(bytes)) {
    throw new Error(`${where}: header note "${note}" is not "${describeFrameHeader(bytes)}"`);
  }
  if (draft.json.length === 0) throw new Error(`${where}: no json meaning`);
  const meaning = JSON.parse(draft.json.join('\n')) as Json;
  return { title: draft.title, notes: draft.notes, bytes, meaning };
}
