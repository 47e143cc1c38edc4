// The wire codec of replica messages (src/vsr/message.ts), carried by the replica bus as a kind
// byte and a body. Prepares travel as their exact journal bytes (header + body), so a prepare
// received from a peer is byte-for-byte the record the primary wrote. Decoding takes untrusted
// bytes: lengths are bounded, the prepare header's own checksum is verified here (a frame that
// decodes always names a well-formed header), and anything malformed throws DecodeError — the
// bus then drops the message, which VSR tolerates like any lost message. Body checksums are left
// to the replica, which must check them itself (repair and view change depend on it).

import { DecodeError, Reader, Writer } from '../core/binary.js';
import { sha256SizeBytes } from '../core/checksum.js';
import { constants } from '../core/constants.js';
import { decodeHeader, headerSizeBytes } from '../core/header.js';
import type { Prepare } from '../core/header.js';
import { asOp, asReplicaIndex, asView } from '../core/types.js';
import type {
  NackReason,
  ReplicaMessage,
  ReplicaMessageKind,
  SuffixEntry,
} from '../vsr/message.js';

export const replicaMessageTag: Record<ReplicaMessageKind, number> = {
  prepare: 1,
  prepare_ok: 2,
  commit: 3,
  ping: 4,
  pong: 5,
  start_view_change: 6,
  do_view_change: 7,
  start_view: 8,
  request_start_view: 9,
  request_prepare: 10,
  request_prepares: 11,
  repair_prepare: 12,
  nack_prepare: 13,
};

const kindByTag = new Map<number, ReplicaMessageKind>(
  Object.entries(replicaMessageTag).map(([kind, tag]) => [tag, kind as ReplicaMessageKind]),
);
const suffixCountMax = 64 * 1024;
const nackReasons: readonly NackReason[] = ['not_seen', 'seen_but_corrupt'];

function writePrepare(writer: Writer, prepare: Prepare): void {
  writer.fixed(prepare.headerBytes, headerSizeBytes).bytesField(prepare.body);
}

function readPrepare(reader: Reader): Prepare {
  const headerBytes = reader.fixed(headerSizeBytes).slice();
  const decoded = decodeHeader(headerBytes);
  if (!decoded.ok) throw new DecodeError(`prepare header: ${decoded.problem}`);
  const body = reader.bytesField(constants.prepareBodySizeBytesMax).slice();
  return { header: decoded.header, headerBytes, body };
}

function writeChecksumOrNull(writer: Writer, checksum: Uint8Array | null): void {
  writer.bool(checksum !== null);
  if (checksum !== null) writer.fixed(checksum, sha256SizeBytes);
}

function readChecksumOrNull(reader: Reader): Uint8Array | null {
  return reader.bool() ? reader.fixed(sha256SizeBytes).slice() : null;
}

function writeSuffix(writer: Writer, suffix: readonly SuffixEntry[]): void {
  writer.u32(suffix.length);
  for (const entry of suffix) {
    writer
      .u64(entry.op)
      .fixed(entry.checksum, sha256SizeBytes)
      .bool(entry.prepare !== null);
    if (entry.prepare !== null) writePrepare(writer, entry.prepare);
  }
}

function readSuffix(reader: Reader): SuffixEntry[] {
  const count = reader.u32();
  if (count > suffixCountMax) throw new DecodeError(`suffix of ${count} entries`);
  const suffix: SuffixEntry[] = [];
  for (let i = 0; i < count; i++) {
    const op = asOp(reader.u64());
    const checksum = reader.fixed(sha256SizeBytes).slice();
    suffix.push({ op, checksum, prepare: reader.bool() ? readPrepare(reader) : null });
  }
  return suffix;
}

/** Encodes a message's body; its tag goes in the bus's kind byte. */
export function encodeReplicaMessage(message: ReplicaMessage): { tag: number; body: Uint8Array } {
  const writer = new Writer(message.kind === 'prepare' ? 256 + message.prepare.body.length : 64);
  writer.u8(message.replica).u32(message.view);
  switch (message.kind) {
    case 'prepare':
      writePrepare(writer, message.prepare);
      break;
    case 'prepare_ok':
      writer.u64(message.op).fixed(message.checksum, sha256SizeBytes);
      break;
    case 'commit':
      writer.u64(message.commit);
      break;
    case 'ping':
      writer.u64(message.pingMonotonicUs);
      break;
    case 'pong':
      writer.u64(message.pingMonotonicUs).u64(message.pongRealtimeUs);
      break;
    case 'start_view_change':
      break;
    case 'do_view_change':
      writer.u32(message.logView).u64(message.op).u64(message.commitMax).u64(message.anchorOp);
      writer.fixed(message.anchorChecksum, sha256SizeBytes);
      writeSuffix(writer, message.suffix);
      break;
    case 'start_view':
      writer.u64(message.op).u64(message.commitMax).u64(message.anchorOp);
      writer.fixed(message.anchorChecksum, sha256SizeBytes);
      writeSuffix(writer, message.suffix);
      writer.u32(message.nonce);
      break;
    case 'request_start_view':
      writer.u32(message.nonce);
      break;
    case 'request_prepare':
      writer.u64(message.op);
      writeChecksumOrNull(writer, message.checksum);
      break;
    case 'request_prepares':
      writer.u64(message.opFirst).u64(message.opLast);
      break;
    case 'repair_prepare':
      writePrepare(writer, message.prepare);
      writer.bool(message.committed);
      break;
    case 'nack_prepare':
      writer.u64(message.op);
      writeChecksumOrNull(writer, message.checksum);
      writer.u8(nackReasons.indexOf(message.reason));
      break;
  }
  return { tag: replicaMessageTag[message.kind], body: writer.finish() };
}

/** Decodes a message body; throws DecodeError on anything malformed. */
export function decodeReplicaMessage(tag: number, body: Uint8Array): ReplicaMessage {
  const kind = kindByTag.get(tag);
  if (kind === undefined) throw new DecodeError(`unknown replica message tag ${tag}`);
  const reader = new Reader(body);
  const replica = asReplicaIndex(reader.u8());
  if (replica >= constants.replicaCountMax) throw new DecodeError(`replica ${replica}`);
  const view = asView(reader.u32());
  const message = decodeFields(kind, reader, replica, view);
  reader.end();
  return message;
}

function decodeFields(
  kind: ReplicaMessageKind,
  reader: Reader,
  replica: ReturnType<typeof asReplicaIndex>,
  view: ReturnType<typeof asView>,
): ReplicaMessage {
  switch (kind) {
    case 'prepare':
      return { kind, replica, view, prepare: readPrepare(reader) };
    case 'prepare_ok':
      return { kind, replica, view, op: asOp(reader.u64()), checksum: reader.fixed(32).slice() };
    case 'commit':
      return { kind, replica, view, commit: asOp(reader.u64()) };
    case 'ping':
      return { kind, replica, view, pingMonotonicUs: reader.u64() };
    case 'pong':
      return { kind, replica, view, pingMonotonicUs: reader.u64(), pongRealtimeUs: reader.u64() };
    case 'start_view_change':
      return { kind, replica, view };
    case 'do_view_change': {
      const logView = asView(reader.u32());
      const op = asOp(reader.u64());
      const commitMax = asOp(reader.u64());
      const anchorOp = asOp(reader.u64());
      const anchorChecksum = reader.fixed(sha256SizeBytes).slice();
      const suffix = readSuffix(reader);
      return { kind, replica, view, logView, op, commitMax, anchorOp, anchorChecksum, suffix };
    }
    case 'start_view': {
      const op = asOp(reader.u64());
      const commitMax = asOp(reader.u64());
      const anchorOp = asOp(reader.u64());
      const anchorChecksum = reader.fixed(sha256SizeBytes).slice();
      const suffix = readSuffix(reader);
      const nonce = reader.u32();
      return { kind, replica, view, op, commitMax, anchorOp, anchorChecksum, suffix, nonce };
    }
    case 'request_start_view':
      return { kind, replica, view, nonce: reader.u32() };
    case 'request_prepare':
      return { kind, replica, view, op: asOp(reader.u64()), checksum: readChecksumOrNull(reader) };
    case 'request_prepares':
      return { kind, replica, view, opFirst: asOp(reader.u64()), opLast: asOp(reader.u64()) };
    case 'repair_prepare':
      return { kind, replica, view, prepare: readPrepare(reader), committed: reader.bool() };
    case 'nack_prepare': {
      const op = asOp(reader.u64());
      const checksum = readChecksumOrNull(reader);
      const reason = nackReasons[reader.u8()];
      if (reason === undefined) throw new DecodeError('unknown nack reason');
      return { kind, replica, view, op, checksum, reason };
    }
  }
}
