// Client ids: 16 random bytes, made by the SDK when a session registers and sent as 32 lower-case
// hex digits. Randomness lives here, at the edge, and not in core/: the pure core (kernel/, vsr/)
// imports core/, and lint lets node:crypto in only here and in core/checksum.ts (which hashes), so
// nothing the replica can reach is able to draw random bytes.

import { randomBytes } from 'node:crypto';
import { asClientId } from '../core/types.js';
import type { ClientId } from '../core/types.js';

/** The size of a client id on the wire and in the journal. */
export const clientIdSizeBytes = 16;

/** A fresh random client id; a collision between two clients has odds of about 2^-64. */
export function newClientId(): ClientId {
  return asClientId(randomBytes(clientIdSizeBytes).toString('hex'));
}
