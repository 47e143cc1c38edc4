// Validation of client-supplied strings in commands: names, and the audit metadata that every
// command carries. These checks run inside apply() on every replica, so they must be pure and
// deterministic; they never assert (the input is the client's), they return an error result.
//
// An identifier (tenant name, stream name, actor, correlation id) is a non-empty, well-formed
// string (no lone UTF-16 surrogates, so it has one UTF-8 encoding) of at most its bound in UTF-8
// bytes, without control characters (C0 U+0000..U+001F, DEL U+007F, C1 U+0080..U+009F).
// A reason is free text: well-formed, bounded, and may be empty or hold line breaks.

import { assert } from '../core/assert.js';
import { constants } from '../core/constants.js';
import type { Audit } from './command.js';
import { errorResult } from './outcome.js';
import type { ErrorResult } from './outcome.js';

/**
 * The UTF-8 size of a string in bytes, or -1 if it holds a lone surrogate (not well-formed).
 * Stops counting once past limitBytes, returning a value above it.
 */
export function utf8SizeBytes(value: string, limitBytes: number): number {
  let size = 0;
  for (let i = 0; i < value.length && size <= limitBytes; i++) {
    const unit = value.charCodeAt(i);
    if (unit < 0x80) size += 1;
    else if (unit < 0x800) size += 2;
    else if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = value.charCodeAt(i + 1); // NaN past the end
      if (!(next >= 0xdc00 && next <= 0xdfff)) return -1;
      size += 4;
      i += 1;
    } else if (unit >= 0xdc00 && unit <= 0xdfff) return -1;
    else size += 3;
  }
  return size;
}

function hasControlCharacter(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const unit = value.charCodeAt(i);
    if (unit < 0x20 || (unit >= 0x7f && unit <= 0x9f)) return true;
  }
  return false;
}

/** True when value is a valid identifier of at most maxBytes UTF-8 bytes (see above). */
export function isIdentifier(value: string, maxBytes: number): boolean {
  assert(maxBytes > 0, 'identifier bound must be positive');
  if (value.length === 0) return false;
  const size = utf8SizeBytes(value, maxBytes);
  if (size < 1 || size > maxBytes) return false;
  return !hasControlCharacter(value);
}

/** Checks a name; what names the kind of object in the message ("tenant name"). */
export function checkName(value: string, maxBytes: number, what: string): ErrorResult | null {
  if (isIdentifier(value, maxBytes)) return null;
  return errorResult(
    'invalid_argument',
    `${what} must be 1 to ${maxBytes} bytes of valid UTF-8 without control characters`,
  );
}

/** Checks the audit metadata of a command: who did it (required), why, and a correlation id. */
export function checkAudit(audit: Audit): ErrorResult | null {
  const actorError = checkName(audit.actor, constants.actorBytesMax, 'audit actor');
  if (actorError !== null) return actorError;
  const reasonSize = utf8SizeBytes(audit.reason, constants.reasonBytesMax);
  if (reasonSize < 0 || reasonSize > constants.reasonBytesMax) {
    return errorResult(
      'invalid_argument',
      `audit reason must be at most ${constants.reasonBytesMax} bytes of valid UTF-8`,
    );
  }
  if (audit.correlationId === null) return null;
  return checkName(audit.correlationId, constants.correlationIdBytesMax, 'audit correlation id');
}
