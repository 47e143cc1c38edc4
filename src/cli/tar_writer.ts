// A minimal POSIX ustar writer for the diagnostics bundle: regular files only, each a 512-byte
// header then its data padded to 512 bytes, and two zero blocks at the end; gzip'd with
// node:zlib. `tar -tzf` and every tar reader list it. Also the matching reader, used by tests
// and by anyone checking a bundle from code.
//
// Invariants: names are ASCII, at most 100 bytes (no prefix field is used) and unique; sizes
// fit the 11-digit octal field (< 8 GiB); the header checksum is the byte sum of the header with
// the checksum field read as spaces, as the standard defines.

import { promisify } from 'node:util';
import { gunzip, gzip } from 'node:zlib';

const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);

const blockSizeBytes = 512;
const nameSizeBytesMax = 100;

export interface TarEntry {
  readonly name: string;
  readonly data: Uint8Array;
  /** Modification time, milliseconds since the epoch. */
  readonly mtimeMs: number;
}

function writeText(block: Uint8Array, offset: number, size: number, text: string): void {
  const bytes = Buffer.from(text, 'ascii');
  block.set(bytes.subarray(0, size), offset);
}

function octal(value: number, size: number): string {
  return value.toString(8).padStart(size - 1, '0') + '\0';
}

function header(entry: TarEntry): Uint8Array {
  const block = new Uint8Array(blockSizeBytes);
  writeText(block, 0, nameSizeBytesMax, entry.name);
  writeText(block, 100, 8, octal(0o644, 8));
  writeText(block, 108, 8, octal(0, 8));
  writeText(block, 116, 8, octal(0, 8));
  writeText(block, 124, 12, octal(entry.data.length, 12));
  writeText(block, 136, 12, octal(Math.floor(entry.mtimeMs / 1000), 12));
  writeText(block, 148, 8, ' '.repeat(8));
  writeText(block, 156, 1, '0');
  writeText(block, 257, 6, 'ustar\0');
  writeText(block, 263, 2, '00');
  writeText(block, 265, 32, 'kimberlite');
  writeText(block, 297, 32, 'kimberlite');
  const sum = block.reduce((total, byte) => total + byte, 0);
  writeText(block, 148, 8, sum.toString(8).padStart(6, '0') + '\0 ');
  return block;
}

function checkName(name: string, seen: Set<string>): void {
  const ascii = /^[\x21-\x7e]+$/.test(name);
  if (!ascii || name.length > nameSizeBytesMax || name.startsWith('/') || name.includes('..')) {
    throw new Error(`tar entry name ${JSON.stringify(name)} is not a short relative ASCII path`);
  }
  if (seen.has(name)) throw new Error(`tar entry ${name} appears twice`);
  seen.add(name);
}

/** The .tar.gz bytes of the entries, in order. */
export async function tarGzip(entries: readonly TarEntry[]): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const seen = new Set<string>();
  for (const entry of entries) {
    checkName(entry.name, seen);
    parts.push(header(entry), entry.data);
    const padding = (blockSizeBytes - (entry.data.length % blockSizeBytes)) % blockSizeBytes;
    parts.push(new Uint8Array(padding));
  }
  parts.push(new Uint8Array(2 * blockSizeBytes));
  return gzipAsync(Buffer.concat(parts));
}

function readText(block: Uint8Array, offset: number, size: number): string {
  const field = Buffer.from(block.subarray(offset, offset + size)).toString('ascii');
  const end = field.indexOf('\0');
  return end < 0 ? field : field.slice(0, end);
}

/** Reads the regular files of a .tar.gz (as written above); throws on a bad header checksum. */
export async function untarGzip(bytes: Uint8Array): Promise<Map<string, Buffer>> {
  const tar = await gunzipAsync(bytes);
  const files = new Map<string, Buffer>();
  let position = 0;
  while (position + blockSizeBytes <= tar.length) {
    const block = tar.subarray(position, position + blockSizeBytes);
    if (block.every((byte) => byte === 0)) break;
    const stored = parseInt(readText(block, 148, 8).trim(), 8);
    const blank = Buffer.from(block);
    blank.fill(0x20, 148, 156);
    const sum = blank.reduce((total, byte) => total + byte, 0);
    if (stored !== sum) throw new Error(`tar header at ${position} fails its checksum`);
    const size = parseInt(readText(block, 124, 12).trim(), 8);
    const start = position + blockSizeBytes;
    files.set(readText(block, 0, nameSizeBytesMax), tar.subarray(start, start + size));
    position = start + Math.ceil(size / blockSizeBytes) * blockSizeBytes;
  }
  return files;
}
