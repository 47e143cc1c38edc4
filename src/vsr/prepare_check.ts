// Checks of prepares that arrive from outside the replica (messages from peers). Bytes from the
// network are validated, never asserted (HOUSE_RULES §6): a prepare whose header bytes, decoded
// header and body do not agree is dropped and reported as a checksum failure.

import { checksumEqual } from '../core/checksum.js';
import { constants } from '../core/constants.js';
import { bodyMatches, decodeHeader } from '../core/header.js';
import type { Prepare } from '../core/header.js';

/**
 * True when the prepare is whole and self-consistent: its header bytes decode and verify, the
 * decoded header is the one it carries (checksum, op, parent), it belongs to `cluster`, and its
 * body matches the body checksum.
 */
export function prepareIsValid(prepare: Prepare, cluster: number): boolean {
  const decoded = decodeHeader(prepare.headerBytes);
  if (!decoded.ok) return false;
  const header = decoded.header;
  const claimed = prepare.header;
  if (!checksumEqual(header.checksum, claimed.checksum)) return false;
  if (header.op !== claimed.op || header.view !== claimed.view) return false;
  if (header.commit !== claimed.commit || header.timestampUs !== claimed.timestampUs) return false;
  if (!checksumEqual(header.parent, claimed.parent)) return false;
  if (header.cluster !== cluster || header.op < 1) return false;
  if (header.commit >= header.op) return false;
  if (header.bodySizeBytes > constants.prepareBodySizeBytesMax) return false;
  return bodyMatches(header, prepare.body);
}
