// Bounds on what configuration loading reads and repeats (issue 14): a config file is at most
// configFileSizeBytesMax and its size is checked before it is read or parsed, and any key, value
// or line of the file quoted in an error message is cut to messageQuoteCharCountMax characters
// and "…". Together they keep loading linear in a small input: a 50 MB key once took 25 s (an
// edit distance against every known key) and was echoed whole to stderr. The file's path is not
// cut: the operator chose it.

import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';

const KiB = 1024;

/** The largest config.toml read; real ones are a few KiB. */
export const configFileSizeBytesMax = 1024 * KiB;
/** Characters of a key, value or line quoted in a configuration error message. */
export const messageQuoteCharCountMax = 64;
/** Characters of each line of the file quoted around a TOML syntax error (room for the caret). */
export const excerptLineCharCountMax = 160;
/** Unknown names longer than this get no "did you mean" (and no edit distance is computed). */
export const suggestionNameLengthMax = 64;

/** text, or its first `charCountMax` characters and "…". */
export function clipForMessage(text: string, charCountMax = messageQuoteCharCountMax): string {
  if (text.length <= charCountMax) return text;
  return `${text.slice(0, charCountMax)}…`;
}

function tooLarge(sizeBytes: number): Error {
  const max = configFileSizeBytesMax;
  return new Error(`it is ${sizeBytes} bytes, larger than the limit of ${max} bytes`);
}

/** Reads a config file as UTF-8, refusing one over configFileSizeBytesMax before reading it. */
export function readConfigFile(path: string): string {
  const fd = openSync(path, 'r');
  try {
    const sizeBytes = fstatSync(fd).size;
    if (sizeBytes > configFileSizeBytesMax) throw tooLarge(sizeBytes);
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

/** The same bound for text from another reader (tests pass one in); throws when over it. */
export function checkConfigText(text: string): string {
  // A UTF-16 unit is at least one UTF-8 byte: only long texts need their bytes counted.
  if (text.length <= configFileSizeBytesMax / 3) return text;
  const sizeBytes = Buffer.byteLength(text, 'utf8');
  if (sizeBytes > configFileSizeBytesMax) throw tooLarge(sizeBytes);
  return text;
}
