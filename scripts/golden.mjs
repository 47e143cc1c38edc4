#!/usr/bin/env node
// Writes the golden protocol transcripts in testdata/protocol/ from the exchanges in
// src/net/golden_scenarios.test-support.ts, encoded by the real codecs (testdata/README.md).
// Usage:
//   node scripts/golden.mjs           rewrite every transcript (after an intended wire change)
//   node scripts/golden.mjs --check   write nothing; exit 1 if a file is missing, stale or extra
// The transcripts are data for src/net/golden.test.ts, which decodes and re-encodes each message
// on its own; --check additionally catches a file whose comments or layout were edited by hand.
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { register } from 'tsx/esm/api';

register();
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const directory = join(root, 'testdata', 'protocol');
const { renderTranscript } = await import('../src/net/golden.test-support.ts');
const { goldenExchanges, transcriptOf } =
  await import('../src/net/golden_scenarios.test-support.ts');

const check = process.argv.includes('--check');
const wanted = new Map(
  goldenExchanges().map((exchange) => [exchange.file, renderTranscript(transcriptOf(exchange))]),
);
const present = readdirSync(directory).filter((name) => name.endsWith('.txt'));
const problems = [];
for (const [file, text] of wanted) {
  const path = join(directory, file);
  let current = null;
  try {
    current = readFileSync(path, 'utf8');
  } catch {
    current = null;
  }
  if (current === text) continue;
  if (check) problems.push(`${file}: ${current === null ? 'missing' : 'differs from the codecs'}`);
  else {
    writeFileSync(path, text);
    console.log(`wrote testdata/protocol/${file}`);
  }
}
for (const file of present) {
  if (!wanted.has(file)) problems.push(`${file}: not written by this script (remove it)`);
}
if (problems.length > 0) {
  console.error(problems.join('\n'));
  console.error('stale transcripts: run `node scripts/golden.mjs` if the change is intended');
  process.exit(1);
}
console.log(`${wanted.size} transcripts ${check ? 'match the codecs' : 'up to date'}`);
