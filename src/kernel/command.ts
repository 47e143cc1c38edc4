// Kernel commands and their results, and their binary codec. A command is what a client asks
// the database to do; once committed it is applied by kernel.apply() on every replica. Encoded
// commands are the bodies of requests inside a prepare, so this codec is part of the journal
// format: change it only with a format version bump.
//
// Decoding takes untrusted bytes: every length is bounded and a DecodeError is thrown for any
// malformed input, which the boundary turns into KMB_ERR_INVALID_ARGUMENT. A well-formed field
// over its bound (an event over eventSizeBytesMax, an actor over actorBytesMax, too many events)
// throws CommandLimitError, a DecodeError the boundary answers with KMB_ERR_LIMIT_EXCEEDED; its
// message (fieldLimitMessage) is the one the SDK gives when it refuses the same field unsent.

import { DecodeError, Reader, Writer } from '../core/binary.js';
import { sha256SizeBytes } from '../core/checksum.js';
import { constants } from '../core/constants.js';
import { errorCodes, isErrorCode } from '../core/errors.js';
import type { ErrorCode } from '../core/errors.js';
import { asOffset, asStreamId, asTenantId, asTimestampUs } from '../core/types.js';
import type { Offset, StreamId, TenantId, TimestampUs } from '../core/types.js';

export const dataClasses = [
  'PHI',
  'PII',
  'PCI',
  'Financial',
  'Confidential',
  'Sensitive',
  'Deidentified',
  'Public',
] as const;
export type DataClass = (typeof dataClasses)[number];

export function isDataClass(value: string): value is DataClass {
  return (dataClasses as readonly string[]).includes(value);
}

/** Who did it and why: carried by every command, and so kept forever in the log. */
export interface Audit {
  readonly actor: string;
  readonly reason: string;
  readonly correlationId: string | null;
}

export type Command =
  | { readonly kind: 'create_tenant'; readonly name: string; readonly audit: Audit }
  | {
      readonly kind: 'create_stream';
      readonly tenantId: TenantId;
      readonly name: string;
      readonly dataClass: DataClass;
      readonly audit: Audit;
    }
  | {
      readonly kind: 'append';
      readonly tenantId: TenantId;
      readonly streamId: StreamId;
      readonly expectedOffset: Offset | null;
      readonly events: readonly Uint8Array[];
      readonly audit: Audit;
    };

export type CommandKind = Command['kind'];

export type AppendCommand = Extract<Command, { readonly kind: 'append' }>;

/**
 * The events of an append left where they lie in the encoded command: `count` fields, each a
 * u32 length (little-endian) and that many bytes, filling bytes[start, end). Replicas apply
 * appends in this form (decodeForApply): a view per event was the last per-event allocation in
 * applying an append, after the SHA-256 digest (see chain.ts). The walk over the fields is
 * written out where it is needed (eventArray here, chainAppend, the size check in events.ts)
 * rather than behind one visitor callback: that version made closures per command, and more
 * bytes and kernel CPU per append (docs/performance.md, "Figures behind the code").
 */
export interface EncodedEvents {
  readonly bytes: Uint8Array;
  readonly start: number;
  readonly end: number;
  readonly count: number;
}

/** An append whose events are still encoded. */
export type EncodedAppend = Omit<AppendCommand, 'events'> & { readonly events: EncodedEvents };

/** What kernel.apply() takes: a command, or an append straight from its encoding. */
export type ApplicableCommand = Command | EncodedAppend;

/** The events of either form of append. */
export type AppendEvents = AppendCommand['events'] | EncodedEvents;

export function isEncodedEvents(events: AppendEvents): events is EncodedEvents {
  return !Array.isArray(events);
}

/** The u32 length field at bytes[position, position + 4), little-endian as Writer.u32. */
export function readEventSize(bytes: Uint8Array, position: number): number {
  return (
    (bytes[position]! |
      (bytes[position + 1]! << 8) |
      (bytes[position + 2]! << 16) |
      (bytes[position + 3]! << 24)) >>>
    0
  );
}

/** The events of either form of append, one view per event (for readers, not the hot path). */
export function eventArray(events: AppendEvents): readonly Uint8Array[] {
  if (!isEncodedEvents(events)) return events;
  const views: Uint8Array[] = [];
  let position = events.start;
  for (let index = 0; index < events.count; index++) {
    const sizeBytes = readEventSize(events.bytes, position);
    views.push(events.bytes.subarray(position + 4, position + 4 + sizeBytes));
    position += 4 + sizeBytes;
  }
  return views;
}

export type CommandResult =
  | {
      readonly status: 'ok';
      readonly kind: 'create_tenant';
      readonly tenantId: TenantId;
      readonly name: string;
      readonly createdAtUs: TimestampUs;
    }
  | {
      readonly status: 'ok';
      readonly kind: 'create_stream';
      readonly streamId: StreamId;
      readonly tenantId: TenantId;
      readonly name: string;
      readonly dataClass: DataClass;
      readonly createdAtUs: TimestampUs;
    }
  | {
      readonly status: 'ok';
      readonly kind: 'append';
      readonly firstOffset: Offset;
      readonly count: number;
      /** The stream's chain link after the last appended event. */
      readonly chainHead: Uint8Array;
    }
  | { readonly status: 'error'; readonly code: ErrorCode; readonly message: string };

/** The message for a field over its bound, shared by the server and the SDK. */
export function fieldLimitMessage(field: string, sizeBytes: number, limitBytes: number): string {
  return `${field} is ${sizeBytes} bytes, over the limit of ${limitBytes} bytes`;
}

/** The field name of event `index` in limit messages. */
export function eventFieldName(index: number): string {
  return `event ${index}`;
}

/** The message for an append of too many events, shared by the server and the SDK. */
export function eventCountLimitMessage(count: number): string {
  const max = constants.appendEventCountMax;
  return `an append of ${count} events is over the limit of ${max} events`;
}

/** A well-formed command with a field over its bound: answered with KMB_ERR_LIMIT_EXCEEDED. */
export class CommandLimitError extends DecodeError {
  constructor(message: string) {
    super(message);
    this.name = 'CommandLimitError';
  }
}

/** The names of string fields in limit messages (the SDK uses the same words). */
export const fieldNames = {
  actor: 'audit actor',
  reason: 'audit reason',
  correlationId: 'audit correlation id',
  tenantName: 'tenant name',
  streamName: 'stream name',
} as const;

/** Reads a field's u32 length and checks it against its bound. */
function fieldSizeBytes(reader: Reader, maxBytes: number, field: string): number {
  const sizeBytes = reader.u32();
  if (sizeBytes > maxBytes) {
    throw new CommandLimitError(fieldLimitMessage(field, sizeBytes, maxBytes));
  }
  return sizeBytes;
}

/** Reads an append's event count and checks it against its bound. */
function eventCount(reader: Reader): number {
  const count = reader.u32();
  if (count > constants.appendEventCountMax) {
    throw new CommandLimitError(eventCountLimitMessage(count));
  }
  return count;
}

const commandTag = { create_tenant: 1, create_stream: 2, append: 3 } as const;
const resultTag = { error: 0, create_tenant: 1, create_stream: 2, append: 3 } as const;
const noOffset = 0xffff_ffff; // u32 marker meaning "no expected offset" in the high word

// Strings are decoded here rather than with Reader.string(), whose decoder drops a leading
// U+FEFF (byte order mark): a name or reason that starts with one would not survive the round
// trip. ignoreBOM keeps every code point; fatal still rejects malformed UTF-8.
const stringDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Strings at most this long that are pure ASCII skip the UTF-8 decoder: every request carries
 * its actor and reason, and TextDecoder's per-call cost showed in a leader's profile
 * (docs/performance.md, "Figures behind the code").
 */
const asciiFastPathBytesMax = 64;

function isAscii(data: Uint8Array): boolean {
  for (let index = 0; index < data.length; index++) {
    if ((data[index] ?? 0x80) >= 0x80) return false;
  }
  return true;
}

function readString(reader: Reader, maxBytes: number, field: string): string {
  const data = reader.fixed(fieldSizeBytes(reader, maxBytes, field));
  if (data.length <= asciiFastPathBytesMax && isAscii(data)) {
    // ASCII bytes are their own UTF-16 code units.
    return String.fromCharCode.apply(null, data as unknown as number[]);
  }
  try {
    return stringDecoder.decode(data);
  } catch {
    throw new DecodeError('string is not valid UTF-8');
  }
}

function writeAudit(writer: Writer, audit: Audit): void {
  writer.string(audit.actor).string(audit.reason);
  writer.bool(audit.correlationId !== null);
  if (audit.correlationId !== null) writer.string(audit.correlationId);
}

function readAudit(reader: Reader): Audit {
  const actor = readString(reader, constants.actorBytesMax, fieldNames.actor);
  const reason = readString(reader, constants.reasonBytesMax, fieldNames.reason);
  const correlationId = reader.bool()
    ? readString(reader, constants.correlationIdBytesMax, fieldNames.correlationId)
    : null;
  return { actor, reason, correlationId };
}

/**
 * Every SDK call encodes one command (and a 100-byte append outgrew a fresh 64-byte writer
 * twice); one writer is reused for all of them, so only the returned copy is allocated.
 */
const commandWriter = new Writer(1024);

export function encodeCommand(command: Command): Uint8Array {
  const writer = commandWriter.reset();
  writer.u8(commandTag[command.kind]);
  writeAudit(writer, command.audit);
  switch (command.kind) {
    case 'create_tenant':
      writer.string(command.name);
      break;
    case 'create_stream':
      writer.u64(command.tenantId).string(command.name).u8(dataClasses.indexOf(command.dataClass));
      break;
    case 'append':
      writer.u64(command.tenantId).u64(command.streamId);
      if (command.expectedOffset === null) writer.u32(noOffset).u32(noOffset);
      else writer.u64(command.expectedOffset);
      writer.u32(command.events.length);
      for (const event of command.events) writer.bytesField(event);
      break;
  }
  return writer.finish();
}

function readExpectedOffset(reader: Reader): Offset | null {
  const low = reader.u32();
  const high = reader.u32();
  if (low === noOffset && high === noOffset) return null;
  const value = high * 0x1_0000_0000 + low;
  if (!Number.isSafeInteger(value)) throw new DecodeError('expected offset out of range');
  return asOffset(value);
}

function readDataClass(reader: Reader): DataClass {
  const index = reader.u8();
  const dataClass = dataClasses[index];
  if (dataClass === undefined) throw new DecodeError(`unknown data class ${index}`);
  return dataClass;
}

/** Reads an append's events as one view each. */
function readEventViews(reader: Reader, _bytes: Uint8Array, count: number): Uint8Array[] {
  const events: Uint8Array[] = [];
  for (let i = 0; i < count; i++) events.push(reader.fixed(eventSizeBytes(reader, i)));
  return events;
}

/** Checks an append's events as readEventViews() reads them, and leaves them encoded. */
function readEncodedEvents(reader: Reader, bytes: Uint8Array, count: number): EncodedEvents {
  const start = reader.offset;
  for (let i = 0; i < count; i++) reader.skip(eventSizeBytes(reader, i));
  return { bytes, start, end: reader.offset, count };
}

export function decodeCommand(bytes: Uint8Array): Command {
  return decodeWith(bytes, readEventViews) as Command;
}

/**
 * decodeCommand() for the kernel: the same checks and the same DecodeError for the same bytes (a
 * property test holds it to that), but an append's events stay in `bytes` (EncodedEvents), which
 * must not change until the command has been applied.
 */
export function decodeForApply(bytes: Uint8Array): ApplicableCommand {
  return decodeWith(bytes, readEncodedEvents);
}

function decodeWith(
  bytes: Uint8Array,
  readEvents: (reader: Reader, bytes: Uint8Array, count: number) => AppendEvents,
): ApplicableCommand {
  const reader = new Reader(bytes);
  const tag = reader.u8();
  const audit = readAudit(reader);
  let command: ApplicableCommand;
  if (tag === commandTag.create_tenant) {
    command = {
      kind: 'create_tenant',
      name: readString(reader, constants.tenantNameBytesMax, fieldNames.tenantName),
      audit,
    };
  } else if (tag === commandTag.create_stream) {
    const tenantId = asTenantId(reader.u64());
    const name = readString(reader, constants.streamNameBytesMax, fieldNames.streamName);
    command = { kind: 'create_stream', tenantId, name, dataClass: readDataClass(reader), audit };
  } else if (tag === commandTag.append) {
    const tenantId = asTenantId(reader.u64());
    const streamId = asStreamId(reader.u64());
    const expectedOffset = readExpectedOffset(reader);
    const count = eventCount(reader);
    const events = readEvents(reader, bytes, count);
    command = { kind: 'append', tenantId, streamId, expectedOffset, events, audit } as
      AppendCommand | EncodedAppend;
  } else {
    throw new DecodeError(`unknown command tag ${tag}`);
  }
  reader.end();
  return command;
}

/**
 * A string field checked as readString() would decode it, without making the string: ASCII
 * (every actor and reason in practice) is checked in place; anything else goes through the
 * strict decoder once.
 */
function checkString(reader: Reader, bytes: Uint8Array, maxBytes: number, field: string): void {
  const sizeBytes = fieldSizeBytes(reader, maxBytes, field);
  const start = reader.offset;
  reader.skip(sizeBytes);
  for (let index = start; index < start + sizeBytes; index++) {
    if (bytes[index]! < 0x80) continue;
    try {
      stringDecoder.decode(bytes.subarray(start, start + sizeBytes));
    } catch {
      throw new DecodeError('string is not valid UTF-8');
    }
    return;
  }
}

/** The u32 length of event `index`, checked against eventSizeBytesMax. */
function eventSizeBytes(reader: Reader, index: number): number {
  const sizeBytes = reader.u32();
  if (sizeBytes > constants.eventSizeBytesMax) {
    const max = constants.eventSizeBytesMax;
    throw new CommandLimitError(fieldLimitMessage(eventFieldName(index), sizeBytes, max));
  }
  return sizeBytes;
}

/**
 * The kind of an encoded command, after the same checks as decodeCommand() (it throws the same
 * DecodeError for the same bytes, which a property test holds it to), but without building the
 * command: no strings, no view per event. A primary checks every request this way when it
 * arrives; the command is decoded once, when it is executed.
 */
export function checkCommand(bytes: Uint8Array): CommandKind {
  const reader = new Reader(bytes);
  const tag = reader.u8();
  checkString(reader, bytes, constants.actorBytesMax, fieldNames.actor);
  checkString(reader, bytes, constants.reasonBytesMax, fieldNames.reason);
  if (reader.bool()) {
    checkString(reader, bytes, constants.correlationIdBytesMax, fieldNames.correlationId);
  }
  let kind: CommandKind;
  if (tag === commandTag.create_tenant) {
    checkString(reader, bytes, constants.tenantNameBytesMax, fieldNames.tenantName);
    kind = 'create_tenant';
  } else if (tag === commandTag.create_stream) {
    reader.u64();
    checkString(reader, bytes, constants.streamNameBytesMax, fieldNames.streamName);
    readDataClass(reader);
    kind = 'create_stream';
  } else if (tag === commandTag.append) {
    reader.u64();
    reader.u64();
    readExpectedOffset(reader);
    const count = eventCount(reader);
    for (let i = 0; i < count; i++) reader.skip(eventSizeBytes(reader, i));
    kind = 'append';
  } else {
    throw new DecodeError(`unknown command tag ${tag}`);
  }
  reader.end();
  return kind;
}

/**
 * Every replica encodes one result per executed request; one writer is reused for all of them
 * (finish() returns a copy), so only the returned bytes are allocated.
 */
const resultWriter = new Writer(256);

export function encodeResult(result: CommandResult): Uint8Array {
  const writer = resultWriter.reset();
  if (result.status === 'error') {
    writer.u8(resultTag.error).string(result.code).string(result.message);
    return writer.finish();
  }
  writer.u8(resultTag[result.kind]);
  switch (result.kind) {
    case 'create_tenant':
      writer.u64(result.tenantId).string(result.name).u64(result.createdAtUs);
      break;
    case 'create_stream':
      writer.u64(result.streamId).u64(result.tenantId).string(result.name);
      writer.u8(dataClasses.indexOf(result.dataClass)).u64(result.createdAtUs);
      break;
    case 'append':
      writer.u64(result.firstOffset).u32(result.count).fixed(result.chainHead, sha256SizeBytes);
      break;
  }
  return writer.finish();
}

export function decodeResult(bytes: Uint8Array): CommandResult {
  const reader = new Reader(bytes);
  const tag = reader.u8();
  let result: CommandResult;
  if (tag === resultTag.error) {
    const code = readString(reader, 256, 'error code');
    const message = readString(reader, 64 * 1024, 'error message');
    result = { status: 'error', code: isErrorCode(code) ? code : errorCodes.internal, message };
  } else if (tag === resultTag.create_tenant) {
    const tenantId = asTenantId(reader.u64());
    const name = readString(reader, constants.tenantNameBytesMax, fieldNames.tenantName);
    const createdAtUs = asTimestampUs(reader.u64());
    result = { status: 'ok', kind: 'create_tenant', tenantId, name, createdAtUs };
  } else if (tag === resultTag.create_stream) {
    const streamId = asStreamId(reader.u64());
    const tenantId = asTenantId(reader.u64());
    const name = readString(reader, constants.streamNameBytesMax, fieldNames.streamName);
    const dataClass = readDataClass(reader);
    const createdAtUs = asTimestampUs(reader.u64());
    result = {
      status: 'ok',
      kind: 'create_stream',
      streamId,
      tenantId,
      name,
      dataClass,
      createdAtUs,
    };
  } else if (tag === resultTag.append) {
    const firstOffset = asOffset(reader.u64());
    const count = reader.u32();
    const chainHead = reader.fixed(sha256SizeBytes).slice();
    result = { status: 'ok', kind: 'append', firstOffset, count, chainHead };
  } else {
    throw new DecodeError(`unknown result tag ${tag}`);
  }
  reader.end();
  return result;
}
