// stateDigest(): one SHA-256 over a canonical encoding of the whole State, so that replicas (and
// the simulator's checkers) can tell in 32 bytes whether they hold the same state.
//
// Canonical encoding (little-endian, strings as u32 byte length ‖ UTF-8):
//   "kimberlite-ts/state-digest/v1" ‖ u64 tenantIdNext ‖ u64 streamIdNext
//   ‖ u64 tenantCount ‖ per tenant in id order: u64 id ‖ string name ‖ u64 createdAtUs ‖ u8 sealed
//   ‖ u64 streamCount ‖ per stream in id order: u64 id ‖ u64 tenantId ‖ string name
//       ‖ u8 dataClass index (command.ts order) ‖ u64 createdAtUs ‖ u64 nextOffset
//       ‖ chainHead (32 bytes)
// Limits are configuration, not data, and are left out. The encoding is hashed in chunks, so a
// large state is never held twice in memory. Derived indexes (by name) are not hashed: they
// follow from the records, which stateInvariants() checks.

import { assert } from '../core/assert.js';
import { Writer } from '../core/binary.js';
import { sha256Parts, sha256SizeBytes } from '../core/checksum.js';
import { dataClasses } from './command.js';
import type { State } from './state.js';

const digestDomain = 'kimberlite-ts/state-digest/v1';
const chunkSizeBytes = 64 * 1024;

export function stateDigest(state: State): Uint8Array {
  const parts: Uint8Array[] = [];
  let writer = new Writer(chunkSizeBytes * 2);
  const flushIfFull = (): void => {
    if (writer.length < chunkSizeBytes) return;
    parts.push(writer.finish());
    writer = new Writer(chunkSizeBytes * 2);
  };

  writer.string(digestDomain).u64(state.tenantIdNext).u64(state.streamIdNext);
  writer.u64(state.tenants.size);
  for (const tenant of state.tenants.values()) {
    writer.u64(tenant.id).string(tenant.name).u64(tenant.createdAtUs).bool(tenant.sealed);
    flushIfFull();
  }
  writer.u64(state.streams.size);
  for (const stream of state.streams.values()) {
    const dataClassIndex = dataClasses.indexOf(stream.dataClass);
    assert(dataClassIndex >= 0, 'stream has a known data class');
    writer.u64(stream.id).u64(stream.tenantId).string(stream.name).u8(dataClassIndex);
    writer.u64(stream.createdAtUs).u64(stream.nextOffset).fixed(stream.chainHead, sha256SizeBytes);
    flushIfFull();
  }
  parts.push(writer.finish());
  const digest = sha256Parts(parts);
  assert(digest.length === sha256SizeBytes, 'digest is 32 bytes');
  return new Uint8Array(digest.buffer, digest.byteOffset, digest.byteLength); // not a Buffer
}
