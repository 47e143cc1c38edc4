// Proves the command/result codec with fast-check: every valid command and result survives
// encode → decode unchanged (including strings that start with U+FEFF, which a BOM-stripping
// decoder would lose); the encoding is canonical (any bytes that decode re-encode to themselves);
// and untrusted input — random bytes, every truncation of a valid encoding, random byte flips —
// either decodes or throws DecodeError, never another error and never a hang.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { DecodeError } from '../core/binary.js';
import { constants } from '../core/constants.js';
import { errorCodes } from '../core/errors.js';
import { asOffset, asStreamId, asTenantId, asTimestampUs } from '../core/types.js';
import {
  CommandLimitError,
  checkCommand,
  dataClasses,
  decodeCommand,
  decodeForApply,
  decodeResult,
  encodeCommand,
  encodeResult,
  eventArray,
} from './command.js';
import type { ApplicableCommand, Audit, Command, CommandResult, EncodedEvents } from './command.js';

const textEncoder = new TextEncoder();

/** fc.record with ordinary objects (deepStrictEqual compares prototypes). */
function record<T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<T> {
  return fc.record(model, { noNullPrototype: true });
}

/** Well-formed strings (whole code points) of at most maxBytes UTF-8 bytes. */
function text(maxBytes: number, minLength = 0): fc.Arbitrary<string> {
  const plain = fc.string({ unit: 'binary', minLength, maxLength: Math.floor(maxBytes / 4) });
  const bom = plain.map((s) => `\uFEFF${s}`);
  return fc
    .oneof({ arbitrary: plain, weight: 4 }, { arbitrary: bom, weight: 1 })
    .filter((s) => textEncoder.encode(s).length <= maxBytes);
}

const auditArb: fc.Arbitrary<Audit> = record({
  actor: text(constants.actorBytesMax),
  reason: text(constants.reasonBytesMax),
  correlationId: fc.option(text(constants.correlationIdBytesMax), { nil: null }),
});
const tenantIdArb = fc.maxSafeNat().map(asTenantId);
const streamIdArb = fc.maxSafeNat().map(asStreamId);
const dataClassArb = fc.constantFrom(...dataClasses);

const commandArb: fc.Arbitrary<Command> = fc.oneof(
  record({
    kind: fc.constant('create_tenant' as const),
    name: text(constants.tenantNameBytesMax),
    audit: auditArb,
  }),
  record({
    kind: fc.constant('create_stream' as const),
    tenantId: tenantIdArb,
    name: text(constants.streamNameBytesMax),
    dataClass: dataClassArb,
    audit: auditArb,
  }),
  record({
    kind: fc.constant('append' as const),
    tenantId: tenantIdArb,
    streamId: streamIdArb,
    expectedOffset: fc.option(fc.maxSafeNat().map(asOffset), { nil: null }),
    events: fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 8 }),
    audit: auditArb,
  }),
);

const resultArb: fc.Arbitrary<CommandResult> = fc.oneof(
  record({
    status: fc.constant('error' as const),
    code: fc.constantFrom(...Object.values(errorCodes)),
    message: text(2048),
  }),
  record({
    status: fc.constant('ok' as const),
    kind: fc.constant('create_tenant' as const),
    tenantId: tenantIdArb,
    name: text(constants.tenantNameBytesMax),
    createdAtUs: fc.maxSafeNat().map(asTimestampUs),
  }),
  record({
    status: fc.constant('ok' as const),
    kind: fc.constant('create_stream' as const),
    streamId: streamIdArb,
    tenantId: tenantIdArb,
    name: text(constants.streamNameBytesMax),
    dataClass: dataClassArb,
    createdAtUs: fc.maxSafeNat().map(asTimestampUs),
  }),
  record({
    status: fc.constant('ok' as const),
    kind: fc.constant('append' as const),
    firstOffset: fc.maxSafeNat().map(asOffset),
    count: fc.integer({ min: 0, max: 0xffff_ffff }),
    chainHead: fc.uint8Array({ minLength: 32, maxLength: 32 }),
  }),
);

/** Runs decode; returns 'decoded' or 'rejected', and fails on any error but DecodeError. */
function decodeOrReject(decode: (bytes: Uint8Array) => unknown, bytes: Uint8Array): string {
  try {
    decode(bytes);
    return 'decoded';
  } catch (error) {
    assert.ok(error instanceof DecodeError, `expected DecodeError, got ${String(error)}`);
    return 'rejected';
  }
}

/** decodeCommand's kind, or its DecodeError's message; fails on any other error. */
function kindOrMessage(check: (bytes: Uint8Array) => string, bytes: Uint8Array): string {
  try {
    return `kind ${check(bytes)}`;
  } catch (error) {
    assert.ok(error instanceof DecodeError, `expected DecodeError, got ${String(error)}`);
    return `error ${error.message}`;
  }
}

/** A valid encoding with a few bytes overwritten, cut short or extended. */
const damagedCommandArb: fc.Arbitrary<Uint8Array> = fc
  .tuple(
    commandArb.map(encodeCommand),
    fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }),
    fc.option(fc.nat(), { nil: null }),
    fc.uint8Array({ maxLength: 3 }),
  )
  .map(([bytes, writes, cut, tail]) => {
    const damaged = Uint8Array.from(bytes);
    for (const [at, value] of writes) if (damaged.length > 0) damaged[at % damaged.length] = value;
    const kept = cut === null ? damaged : damaged.subarray(0, cut % (damaged.length + 1));
    return Uint8Array.from([...kept, ...tail]);
  });

describe('checkCommand', () => {
  it('accepts exactly what decodeCommand decodes, with the same kind or the same error', () => {
    const decodeKind = (bytes: Uint8Array): string => decodeCommand(bytes).kind;
    fc.assert(
      fc.property(
        fc.oneof(commandArb.map(encodeCommand), damagedCommandArb, fc.uint8Array()),
        (bytes) => {
          assert.equal(kindOrMessage(checkCommand, bytes), kindOrMessage(decodeKind, bytes));
        },
      ),
      { numRuns: 2_000 },
    );
  });

  it('rejects a non-ASCII string that is not UTF-8, and accepts one that is', () => {
    const audit = { actor: 'é', reason: 'r', correlationId: null };
    const bytes = encodeCommand({ kind: 'create_tenant', name: 'n', audit });
    assert.equal(checkCommand(bytes), 'create_tenant');
    const broken = Uint8Array.from(bytes);
    broken[broken.indexOf(0xa9)] = 0x28; // é is C3 A9; C3 28 is malformed
    assert.throws(() => checkCommand(broken), /not valid UTF-8/);
    assert.throws(() => decodeCommand(broken), /not valid UTF-8/);
  });
});

describe('decodeForApply', () => {
  it('decodes what decodeCommand decodes, to the same command, with the same errors', () => {
    const decodedOrMessage = (decode: (bytes: Uint8Array) => unknown, bytes: Uint8Array) => {
      try {
        const command = decode(bytes) as ApplicableCommand;
        if (command.kind !== 'append') return command;
        return { ...command, events: eventArray(command.events).map((e) => Array.from(e)) };
      } catch (error) {
        assert.ok(error instanceof DecodeError, `expected DecodeError, got ${String(error)}`);
        return `error ${error.message}`;
      }
    };
    fc.assert(
      fc.property(
        fc.oneof(commandArb.map(encodeCommand), damagedCommandArb, fc.uint8Array()),
        (bytes) => {
          const packed = decodedOrMessage(decodeForApply, bytes);
          assert.deepStrictEqual(packed, decodedOrMessage(decodeCommand, bytes));
        },
      ),
      { numRuns: 2_000 },
    );
  });

  it('leaves the events of an append in place, within the bytes it was given', () => {
    const events = [Uint8Array.of(1, 2, 3), new Uint8Array(0), Uint8Array.of(9)];
    const audit = { actor: 'a', reason: 'r', correlationId: null };
    const ids = { tenantId: asTenantId(1), streamId: asStreamId(2), expectedOffset: null };
    const bytes = encodeCommand({ kind: 'append', ...ids, events, audit });
    const command = decodeForApply(bytes);
    assert.equal(command.kind, 'append');
    if (command.kind !== 'append') return;
    assert.ok(!Array.isArray(command.events), 'events stay encoded');
    assert.equal(eventArray(command.events).length, 3);
    const encoded = command.events as EncodedEvents;
    assert.equal(encoded.bytes, bytes);
    assert.equal(encoded.end, bytes.length);
    assert.equal(encoded.end - encoded.start, 3 * 4 + 3 + 0 + 1);
    assert.deepStrictEqual(eventArray(command.events), events);
  });
});

describe('command codec', () => {
  it('round-trips every valid command', () => {
    fc.assert(
      fc.property(commandArb, (command) => {
        assert.deepStrictEqual(decodeCommand(encodeCommand(command)), command);
      }),
      { numRuns: 500 },
    );
  });

  it('round-trips every valid result', () => {
    fc.assert(
      fc.property(resultArb, (result) => {
        assert.deepStrictEqual(decodeResult(encodeResult(result)), result);
      }),
      { numRuns: 500 },
    );
  });

  it('keeps a leading U+FEFF in names and audit strings', () => {
    const audit = { actor: '\uFEFFa', reason: '\uFEFF', correlationId: '\uFEFFc' };
    const command: Command = { kind: 'create_tenant', name: '\uFEFFacme', audit };
    assert.deepStrictEqual(decodeCommand(encodeCommand(command)), command);
  });

  it('rejects every truncation of a valid encoding with DecodeError', () => {
    fc.assert(
      fc.property(commandArb, resultArb, (command, result) => {
        const commandBytes = encodeCommand(command);
        for (let end = 0; end < commandBytes.length; end++) {
          assert.throws(() => decodeCommand(commandBytes.subarray(0, end)), DecodeError);
        }
        const resultBytes = encodeResult(result);
        for (let end = 0; end < resultBytes.length; end++) {
          assert.throws(() => decodeResult(resultBytes.subarray(0, end)), DecodeError);
        }
      }),
      { numRuns: 100 },
    );
  });

  it('decodes random bytes or throws DecodeError, and what decodes re-encodes identically', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        if (decodeOrReject(decodeCommand, bytes) === 'decoded') {
          assert.deepStrictEqual(encodeCommand(decodeCommand(bytes)), bytes);
        }
        decodeOrReject(decodeResult, bytes);
      }),
      { numRuns: 2000 },
    );
  });

  it('decodes valid encodings with a flipped byte or throws DecodeError', () => {
    fc.assert(
      fc.property(commandArb, fc.nat(), fc.integer({ min: 1, max: 255 }), (command, at, xor) => {
        const bytes = encodeCommand(command);
        const position = at % bytes.length;
        bytes[position] = (bytes[position] ?? 0) ^ xor;
        if (decodeOrReject(decodeCommand, bytes) === 'decoded') {
          assert.deepStrictEqual(encodeCommand(decodeCommand(bytes)), bytes);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('bounds hostile lengths instead of allocating them', () => {
    const header = [3, 0, 0, 0, 0, 0, 0, 0, 0, 0]; // append, empty actor and reason, no corr.
    const ids = new Array<number>(16).fill(0).concat(new Array<number>(8).fill(0xff));
    const hugeCount = [0xff, 0xff, 0xff, 0x7f];
    const bytes = new Uint8Array([...header, ...ids, ...hugeCount]);
    assert.throws(() => decodeCommand(bytes), /over the limit of 10000 events/);
    assert.throws(() => decodeCommand(bytes), CommandLimitError);
    assert.throws(() => checkCommand(bytes), CommandLimitError);
  });

  it('names the field, its size and its limit when a field is over its bound', () => {
    // A CommandLimitError (a DecodeError) from both decoders, with fieldLimitMessage's words:
    // the node answers it with KMB_ERR_LIMIT_EXCEEDED and the SDK refuses with the same text.
    const audit = { actor: 'a', reason: '', correlationId: null };
    const ids = { tenantId: asTenantId(1), streamId: asStreamId(2), expectedOffset: null };
    const big = new Uint8Array(constants.eventSizeBytesMax + 1);
    const cases: Array<[Command, RegExp]> = [
      [
        { kind: 'append', ...ids, events: [Uint8Array.of(1), big], audit },
        new RegExp(`^event 1 is ${big.length} bytes, over the limit of ${big.length - 1} bytes$`),
      ],
      [
        { kind: 'create_tenant', name: 't', audit: { ...audit, actor: 'x'.repeat(300) } },
        /^audit actor is 300 bytes, over the limit of 256 bytes$/,
      ],
      [
        { kind: 'create_tenant', name: 'é'.repeat(65), audit },
        /^tenant name is 130 bytes, over the limit of 128 bytes$/,
      ],
    ];
    for (const [command, message] of cases) {
      const bytes = encodeCommand(command);
      assert.throws(() => checkCommand(bytes), CommandLimitError);
      assert.throws(() => checkCommand(bytes), { message });
      assert.throws(() => decodeCommand(bytes), { message });
      assert.throws(() => decodeForApply(bytes), CommandLimitError);
    }
  });
});
