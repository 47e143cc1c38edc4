// The rules for the name of a new tenant or stream, in one pure function (newNameProblem) that
// the node's admission (admission.ts), the SDK and the CLI all call, so each refuses the same
// names with the same message. A name is what operators type, read in listings and put in paths
// and URLs, so besides being a valid identifier (validate.ts: 1..bound UTF-8 bytes, well-formed,
// no control characters) it must:
//   - not begin or end with whitespace (so it is not blank either);
//   - hold no character that changes how text around it is shown or that cannot be seen: the
//     bidirectional controls U+061C, U+200E, U+200F, U+202A..U+202E, U+2066..U+2069, the
//     zero-width characters U+200B..U+200D, U+2060 and the byte order mark U+FEFF, and the line
//     and paragraph separators U+2028, U+2029;
//   - not look like a path: no "/" or "\", and not "." or "..";
//   - not be all ASCII digits, which the CLI would take for an id.
//
// These rules apply where a command is admitted (before it enters the log), never in the
// kernel's apply(): a journal written before they existed may hold such names, and replaying it
// must reach the same state on every replica, so apply() keeps the older identifier rule.

import { constants } from '../core/constants.js';
import { fieldLimitMessage, fieldNames } from './command.js';
import { errorResult } from './outcome.js';
import type { ErrorResult } from './outcome.js';
import { isIdentifier, utf8SizeBytes } from './validate.js';

/** The kinds of object a name is checked for. */
export type NameKind = 'tenant' | 'stream';

/** Characters of a name shown in a message, at most; the rest is cut to "…". */
export const nameShownCharCountMax = 64;

const whitespace = /\s/u;
/** Characters a message shows as they are; see showName(). */
const visible = /^[\p{L}\p{M}\p{N}\p{P}\p{S} ]$/u;
const textEncoder = new TextEncoder();

/** Invisible or direction-changing code points (see above), all in the BMP. */
function isHiddenCharacter(unit: number): boolean {
  return (
    unit === 0x061c ||
    (unit >= 0x200b && unit <= 0x200f) ||
    (unit >= 0x2028 && unit <= 0x202e) ||
    (unit >= 0x2060 && unit <= 0x2069 && unit !== 0x2065) ||
    unit === 0xfeff
  );
}

function hiddenCharacterIndex(value: string): number {
  for (let i = 0; i < value.length; i++) if (isHiddenCharacter(value.charCodeAt(i))) return i;
  return -1;
}

function hex(point: number): string {
  return `U+${point.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** One character (code point) as a JSON-like escape. */
function escaped(char: string): string {
  const point = char.codePointAt(0) ?? 0;
  const digits = point.toString(16).padStart(4, '0');
  return point > 0xffff ? `\\u{${digits}}` : `\\u${digits}`;
}

/**
 * A name as a message shows it: quoted, every character but letters, marks, digits, punctuation,
 * symbols and the space written as a \u escape with four hex digits (so a right-to-left override
 * cannot reorder the message around it), cut after nameShownCharCountMax characters of that
 * text, with "…".
 */
export function showName(value: string): string {
  let shown = '';
  for (const char of value) {
    const piece =
      char === '"' || char === '\\' ? `\\${char}` : visible.test(char) ? char : escaped(char);
    if (shown.length + piece.length > nameShownCharCountMax) return `"${shown}…"`;
    shown += piece;
  }
  return `"${shown}"`;
}

/** Why a name breaks the rules beyond the identifier rule, or null. */
function ruleBroken(value: string): string | null {
  if (value.trim().length === 0) return 'is blank';
  const hidden = hiddenCharacterIndex(value);
  if (hidden >= 0) {
    const what = hex(value.charCodeAt(hidden));
    return `holds ${what}, an invisible or text-direction character, at index ${hidden}`;
  }
  const first = value[0] ?? '';
  const last = value[value.length - 1] ?? '';
  if (whitespace.test(first) || whitespace.test(last)) return 'begins or ends with whitespace';
  if (value.includes('/') || value.includes('\\')) return 'holds "/" or "\\" (a path separator)';
  if (value === '.' || value === '..') return 'is "." or ".." (a path)';
  if (/^[0-9]+$/.test(value)) return 'is all digits, which would be taken for an id';
  return null;
}

/**
 * The error for a new tenant or stream name that breaks the rules above, or null when it is
 * fine: KMB_ERR_LIMIT_EXCEEDED when it is over its bound (as the server's decoder says),
 * otherwise KMB_ERR_INVALID_ARGUMENT naming the rule. Pure and total: any string is answered.
 */
export function newNameProblem(value: string, kind: NameKind): ErrorResult | null {
  const field = kind === 'tenant' ? fieldNames.tenantName : fieldNames.streamName;
  const maxBytes = kind === 'tenant' ? constants.tenantNameBytesMax : constants.streamNameBytesMax;
  const sizeBytes = utf8SizeBytes(value, maxBytes);
  if (sizeBytes > maxBytes) {
    const seenBytes = textEncoder.encode(value).length; // as the wire encodes it
    return errorResult('limit_exceeded', fieldLimitMessage(field, seenBytes, maxBytes));
  }
  if (!isIdentifier(value, maxBytes)) {
    const rule = `1 to ${maxBytes} bytes of valid UTF-8 without control characters`;
    return errorResult('invalid_argument', `${field} ${showName(value)} must be ${rule}`);
  }
  const broken = ruleBroken(value);
  if (broken === null) return null;
  return errorResult('invalid_argument', `${field} ${showName(value)} ${broken}`);
}
