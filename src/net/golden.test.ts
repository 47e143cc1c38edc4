// Proves that the wire has not changed by accident: every golden transcript in testdata/protocol/
// is read on its own (not regenerated), each message's bytes are decoded by the real codecs and
// must give exactly the meaning written beside them, and that meaning must encode back to exactly
// those bytes. The files must cover every message kind of the client and replica conversations
// and hold at least one message each, so the test cannot pass on an empty or missing directory;
// flipping one byte or one value in a file is shown to fail. A last check compares the files with
// what scripts/golden.mjs would write, so the exchanges and the files never drift apart.

import { strict as assert } from 'node:assert';
import { readFileSync, readdirSync } from 'node:fs';
import { describe, it } from 'node:test';
import { toHex } from '../core/checksum.js';
import { frameToMeaning, meaningToFrame, parseTranscript } from './golden.test-support.js';
import type { Json, Transcript } from './golden.test-support.js';
import { renderTranscript } from './golden.test-support.js';
import { goldenExchanges, requiredKinds, transcriptOf } from './golden_scenarios.test-support.js';

const directory = new URL('../../testdata/protocol/', import.meta.url);
const refresh = 'an intended wire change is refreshed with `node scripts/golden.mjs`';

function readTranscripts(): Map<string, string> {
  const names = readdirSync(directory).filter((name) => name.endsWith('.txt'));
  return new Map(
    names.sort().map((name) => [name, readFileSync(new URL(name, directory), 'utf8')]),
  );
}

/** What is wrong with a transcript's messages: empty when every one round-trips exactly. */
function problemsOf(transcript: Transcript): string[] {
  const problems: string[] = [];
  if (transcript.messages.length === 0) problems.push('the transcript holds no message');
  for (const message of transcript.messages) {
    try {
      const decoded = frameToMeaning(transcript.protocol, message.bytes);
      assert.deepStrictEqual(decoded, message.meaning, 'the bytes decode to another meaning');
      const encoded = meaningToFrame(transcript.protocol, message.meaning);
      assert.equal(toHex(encoded), toHex(message.bytes), 'the meaning encodes to other bytes');
    } catch (error) {
      problems.push(`"${message.title}": ${error instanceof Error ? error.message : error}`);
    }
  }
  return problems;
}

function kindOf(meaning: Json): string {
  assert.ok(typeof meaning === 'object' && meaning !== null && !Array.isArray(meaning));
  const kind = meaning['kind'];
  assert.equal(typeof kind, 'string');
  return kind as string;
}

describe('golden protocol transcripts (testdata/protocol)', () => {
  const files = readTranscripts();

  it('every message decodes to its written meaning and encodes back to its bytes', () => {
    assert.ok(files.size >= goldenExchanges().length, 'a transcript file is missing');
    for (const [name, text] of files) {
      const problems = problemsOf(parseTranscript(text));
      assert.deepEqual(problems, [], `${name}: ${problems.join('; ')} (${refresh})`);
    }
  });

  it('covers every message kind of both conversations', () => {
    const seen = { client: new Set<string>(), replica: new Set<string>() };
    for (const text of files.values()) {
      const transcript = parseTranscript(text);
      for (const message of transcript.messages) {
        seen[transcript.protocol].add(kindOf(message.meaning));
      }
    }
    for (const protocol of ['client', 'replica'] as const) {
      const missing = requiredKinds[protocol].filter((kind) => !seen[protocol].has(kind));
      assert.deepEqual(missing, [], `${protocol} kinds without a golden message`);
    }
  });

  it('fails on one flipped byte, one changed value, or no message at all', () => {
    const text = files.get('client_append.txt');
    assert.ok(text !== undefined, 'client_append.txt is present');
    // A byte of the second hex line (the client id): the frame checksum no longer matches.
    const flipped = text.replace(/^(hex 0010 {2})a1/m, '$1a0');
    assert.notEqual(flipped, text);
    assert.notDeepEqual(problemsOf(parseTranscript(flipped)), []);
    // A value in the meaning: the bytes now decode to something else.
    const changed = text.replace('"op": 42', '"op": 43');
    assert.notEqual(changed, text);
    assert.notDeepEqual(problemsOf(parseTranscript(changed)), []);
    // A byte of the frame header: its words no longer describe it, so parsing refuses it.
    const header = text.replace(/^(hex 0000 {2}4b4d4246 )2d/m, '$12e');
    assert.notEqual(header, text);
    assert.throws(() => parseTranscript(header), /header note/);
    const empty = parseTranscript('# nothing\n\nprotocol client\n');
    assert.deepEqual(problemsOf(empty), ['the transcript holds no message']);
  });

  it('matches what scripts/golden.mjs writes from the exchanges', () => {
    const wanted = goldenExchanges().map((exchange) => exchange.file);
    assert.deepEqual([...files.keys()], [...wanted].sort(), 'the set of transcript files');
    for (const exchange of goldenExchanges()) {
      const expected = renderTranscript(transcriptOf(exchange));
      assert.equal(files.get(exchange.file), expected, `${exchange.file} is stale (${refresh})`);
    }
  });
});
