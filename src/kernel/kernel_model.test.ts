// Model-based test of the kernel: fast-check generates random command sequences — valid ones
// and invalid ones (unknown and cross-tenant ids, duplicate, empty, oversized and malformed
// names, empty actors, wrong expected offsets, empty appends, sealed tenants, and, with small
// limits, full tables) — and applies each both to the kernel and to a deliberately simple model
// built from plain arrays. It proves that for every command the status, error code, ids,
// offsets, timestamps, chain head and effects agree, that the state's invariants hold after
// every command, and that the final listings and every query agree with the model. A third run
// applies every append from its encoding, as replicas do (decodeForApply: the events are left in
// the encoded bytes), and must agree with the same model.

import { createHash } from 'node:crypto';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { DecodeError } from '../core/binary.js';
import { constants } from '../core/constants.js';
import { errorCodes } from '../core/errors.js';
import type { ErrorName } from '../core/errors.js';
import {
  asClientId,
  asOffset,
  asOp,
  asStreamId,
  asTenantId,
  asTimestampUs,
} from '../core/types.js';
import {
  activeTenantCount,
  apply,
  createState,
  dataClasses,
  decodeForApply,
  defaultStateLimits,
  encodeCommand,
  stateInvariants,
  streamById,
  streamByName,
  streamList,
  tenantById,
  tenantByName,
  tenantList,
} from './kernel.js';
import type {
  ApplicableCommand,
  Command,
  CommandMeta,
  DataClass,
  State,
  StateLimits,
} from './kernel.js';

// ---- The model: arrays and linear scans, written from the rules, not from the kernel. ----

interface ModelTenant {
  id: number;
  name: string;
  createdAtUs: number;
  sealed: boolean;
}
interface ModelStream {
  id: number;
  tenantId: number;
  name: string;
  dataClass: DataClass;
  createdAtUs: number;
  offset: number;
  head: string;
}
interface Model {
  limits: StateLimits;
  tenants: ModelTenant[];
  streams: ModelStream[];
}
type Expected =
  { error: ErrorName } | { ok: Record<string, unknown>; effect: Record<string, unknown> };

function u64(value: number): Uint8Array {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(value), true);
  return bytes;
}

function modelGenesis(tenantId: number, streamId: number): string {
  const hasher = createHash('sha256').update('kimberlite-ts/stream-chain/v1');
  return hasher.update(u64(tenantId)).update(u64(streamId)).digest('hex');
}

function modelLink(head: string, offset: number, ts: number, data: Uint8Array): string {
  const length = new Uint8Array(4);
  new DataView(length.buffer).setUint32(0, data.length, true);
  const hasher = createHash('sha256').update(Buffer.from(head, 'hex'));
  return hasher.update(u64(offset)).update(u64(ts)).update(length).update(data).digest('hex');
}

/** C0, DEL and C1 control characters, by code point. */
function hasControl(value: string): boolean {
  return [...value].some((ch) => {
    const point = ch.codePointAt(0) ?? 0;
    return point < 0x20 || (point >= 0x7f && point <= 0x9f);
  });
}

function validName(name: string, maxBytes: number): boolean {
  try {
    encodeURIComponent(name); // throws on a lone surrogate
  } catch {
    return false;
  }
  const size = new TextEncoder().encode(name).length;
  return size >= 1 && size <= maxBytes && !hasControl(name);
}

function modelCreateTenant(model: Model, name: string, ts: number): Expected {
  if (!validName(name, constants.tenantNameBytesMax)) return { error: 'invalid_argument' };
  if (model.tenants.some((t) => t.name === name)) return { error: 'tenant_exists' };
  if (model.tenants.length >= model.limits.tenantCountMax) return { error: 'limit_exceeded' };
  const tenant = { id: model.tenants.length + 1, name, createdAtUs: ts, sealed: false };
  model.tenants.push(tenant);
  return {
    ok: { kind: 'create_tenant', tenantId: tenant.id, name, createdAtUs: ts },
    effect: { kind: 'tenant_created', tenantId: tenant.id, name },
  };
}

function modelCreateStream(model: Model, c: CreateStep, ts: number): Expected {
  if (!validName(c.name, constants.streamNameBytesMax)) return { error: 'invalid_argument' };
  const tenant = model.tenants.find((t) => t.id === c.tenantId);
  if (tenant === undefined) return { error: 'tenant_not_found' };
  if (tenant.sealed) return { error: 'tenant_sealed' };
  if (model.streams.some((s) => s.tenantId === c.tenantId && s.name === c.name)) {
    return { error: 'stream_exists' };
  }
  if (model.streams.length >= model.limits.streamCountMax) return { error: 'limit_exceeded' };
  const id = model.streams.length + 1;
  const { tenantId, name, dataClass } = c;
  const head = modelGenesis(tenantId, id);
  model.streams.push({ id, tenantId, name, dataClass, createdAtUs: ts, offset: 0, head });
  return {
    ok: { kind: 'create_stream', streamId: id, tenantId, name, dataClass, createdAtUs: ts },
    effect: { kind: 'stream_created', tenantId, streamId: id, name, dataClass },
  };
}

function modelAppend(model: Model, c: AppendStep, meta: CommandMeta): Expected {
  if (c.events.length === 0) return { error: 'invalid_argument' };
  const tenant = model.tenants.find((t) => t.id === c.tenantId);
  if (tenant === undefined) return { error: 'tenant_not_found' };
  if (tenant.sealed) return { error: 'tenant_sealed' };
  const stream = model.streams.find((s) => s.id === c.streamId && s.tenantId === c.tenantId);
  if (stream === undefined) return { error: 'stream_not_found' };
  if (c.expectedOffset !== null && c.expectedOffset !== stream.offset) {
    return { error: 'offset_mismatch' };
  }
  const firstOffset = stream.offset;
  for (const data of c.events) {
    stream.head = modelLink(stream.head, stream.offset, meta.timestampUs, data);
    stream.offset += 1;
  }
  const count = c.events.length;
  const { op, requestIndex, timestampUs } = meta;
  return {
    ok: { kind: 'append', firstOffset, count, chainHead: stream.head },
    effect: {
      kind: 'events_appended',
      ...{ tenantId: c.tenantId, streamId: c.streamId, firstOffset, count },
      ...{ op, requestIndex, timestampUs },
    },
  };
}

// ---- Steps: what fast-check generates. ----

interface TenantStep {
  kind: 'create_tenant';
  name: string;
  actor: string;
}
interface CreateStep {
  kind: 'create_stream';
  tenantId: number;
  name: string;
  dataClass: DataClass;
  actor: string;
}
interface AppendStep {
  kind: 'append';
  tenantId: number;
  streamId: number;
  expectedOffset: number | null;
  events: Uint8Array[];
  actor: string;
}
/** Stands in for a seal command, which does not exist yet: flips the flag in both worlds. */
interface SealStep {
  kind: 'seal';
  tenantId: number;
}
type Step = TenantStep | CreateStep | AppendStep | SealStep;

// Mostly a few short names, so that duplicates are common; then the edge cases.
const names = fc.oneof(
  { arbitrary: fc.constantFrom('a', 'b'), weight: 6 },
  fc.constantFrom('c', 'orders', 'é', '名前', '\uFEFFa', 'y'.repeat(128), 'y'.repeat(129)),
  fc.constantFrom('', 'bad\u0007', 'del\u007f', 'c1\u0085', '\uD800x', 'x'.repeat(257)),
);
const actors = fc.oneof(
  { arbitrary: fc.constant('alice'), weight: 12 },
  { arbitrary: fc.constantFrom('', 'bob\n', 'z'.repeat(257)), weight: 1 },
);
const tenantIds = fc.integer({ min: 0, max: 5 });
const streamIds = fc.integer({ min: 0, max: 9 });
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ kind: fc.constant('create_tenant' as const), name: names, actor: actors }),
  fc.record({
    kind: fc.constant('create_stream' as const),
    ...{ tenantId: tenantIds, name: names, dataClass: fc.constantFrom(...dataClasses) },
    actor: actors,
  }),
  {
    arbitrary: fc.record({
      kind: fc.constant('append' as const),
      ...{ tenantId: tenantIds, streamId: streamIds, actor: actors },
      expectedOffset: fc.option(fc.integer({ min: 0, max: 4 }), { nil: null, freq: 2 }),
      events: fc.array(fc.uint8Array({ maxLength: 24 }), { maxLength: 4 }),
    }),
    weight: 3,
  },
  { arbitrary: fc.record({ kind: fc.constant('seal' as const), tenantId: tenantIds }), weight: 1 },
);

/** Whole sessions: fast-check's default size would keep arrays to about ten steps. */
const stepsArb = fc.array(stepArb, { maxLength: 80, size: 'max' });

function toCommand(step: Exclude<Step, SealStep>): Command {
  const audit = { actor: step.actor, reason: 'model test', correlationId: null };
  switch (step.kind) {
    case 'create_tenant':
      return { kind: 'create_tenant', name: step.name, audit };
    case 'create_stream': {
      const tenantId = asTenantId(step.tenantId);
      return { kind: 'create_stream', tenantId, name: step.name, dataClass: step.dataClass, audit };
    }
    case 'append': {
      const { events } = step;
      const expectedOffset = step.expectedOffset === null ? null : asOffset(step.expectedOffset);
      const ids = { tenantId: asTenantId(step.tenantId), streamId: asStreamId(step.streamId) };
      return { kind: 'append', ...ids, expectedOffset, events, audit };
    }
  }
}

function modelApply(model: Model, step: Exclude<Step, SealStep>, meta: CommandMeta): Expected {
  if (!validName(step.actor, constants.actorBytesMax)) return { error: 'invalid_argument' };
  switch (step.kind) {
    case 'create_tenant':
      return modelCreateTenant(model, step.name, meta.timestampUs);
    case 'create_stream':
      return modelCreateStream(model, step, meta.timestampUs);
    case 'append':
      return modelAppend(model, step, meta);
  }
}

function seal(state: State, model: Model, tenantId: number): void {
  const record = state.tenants.get(asTenantId(tenantId));
  const modelTenant = model.tenants.find((t) => t.id === tenantId);
  assert.equal(record === undefined, modelTenant === undefined);
  if (record === undefined || modelTenant === undefined || record.sealed) return;
  record.sealed = true;
  state.activeTenantCount -= 1;
  modelTenant.sealed = true;
}

const clientId = asClientId('00000000000000000000000000000001');

function metaFor(index: number): CommandMeta {
  const op = asOp(Math.floor(index / 3) + 1);
  const timestampUs = asTimestampUs(1_700_000_000_000_000 + op * 1000);
  return { op, timestampUs, clientId, requestIndex: index % 3 };
}

function normalize(value: object): Record<string, unknown> {
  const entries = Object.entries(value).map(([k, v]) => [
    k,
    v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v,
  ]);
  return Object.fromEntries(entries) as Record<string, unknown>;
}

/**
 * The command as a replica applies it: an append whose encoding decodes comes from
 * decodeForApply (its events left in the encoded bytes); anything else as built. `encoded`
 * counts the appends that took the encoded path, so a test can show it was exercised.
 */
function applicable(command: Command, encoded: { count: number }): ApplicableCommand {
  if (command.kind !== 'append') return command;
  try {
    const decoded = decodeForApply(encodeCommand(command));
    encoded.count += 1;
    return decoded;
  } catch (error) {
    if (!(error instanceof DecodeError)) throw error;
    return command;
  }
}

function checkStep(
  state: State,
  model: Model,
  step: Step,
  index: number,
  encoded: { count: number } | null,
): void {
  if (step.kind === 'seal') return seal(state, model, step.tenantId);
  const meta = metaFor(index);
  const expected = modelApply(model, step, meta);
  const command = toCommand(step);
  const outcome = apply(state, encoded === null ? command : applicable(command, encoded), meta);
  stateInvariants(state);
  if ('error' in expected) {
    assert.equal(outcome.result.status, 'error');
    if (outcome.result.status === 'error') {
      assert.equal(outcome.result.code, errorCodes[expected.error], outcome.result.message);
    }
    assert.deepStrictEqual(outcome.effects, []);
    return;
  }
  assert.deepStrictEqual(normalize(outcome.result), { status: 'ok', ...expected.ok });
  assert.equal(outcome.effects.length, 1);
  assert.deepStrictEqual(normalize(outcome.effects[0] ?? {}), expected.effect);
}

function modelStreamView(s: ModelStream): Record<string, unknown> {
  const { id, tenantId, name, dataClass, createdAtUs } = s;
  return { id, tenantId, name, dataClass, createdAtUs, nextOffset: s.offset, chainHead: s.head };
}

function checkListings(state: State, model: Model): void {
  assert.deepStrictEqual(tenantList(state).map(normalize), model.tenants.map(normalize));
  assert.equal(activeTenantCount(state), model.tenants.filter((t) => !t.sealed).length);
  for (let tenantId = 0; tenantId <= model.tenants.length + 1; tenantId++) {
    const id = asTenantId(tenantId);
    const mine = model.streams.filter((s) => s.tenantId === tenantId);
    const tenant = model.tenants.find((t) => t.id === tenantId);
    assert.deepStrictEqual(normalize(tenantById(state, id) ?? {}), normalize(tenant ?? {}));
    assert.deepStrictEqual(streamList(state, id).map(normalize), mine.map(modelStreamView));
    for (let streamId = 0; streamId <= model.streams.length + 1; streamId++) {
      const found = streamById(state, id, asStreamId(streamId));
      const want = mine.find((s) => s.id === streamId);
      assert.deepStrictEqual(found && normalize(found), want && modelStreamView(want));
    }
    for (const s of mine) assert.equal(streamByName(state, id, s.name)?.id, s.id);
    assert.equal(streamByName(state, id, '\u0000none'), undefined);
  }
  for (const t of model.tenants) assert.equal(tenantByName(state, t.name)?.id, t.id);
  assert.equal(tenantByName(state, 'no such tenant'), undefined);
}

function runModel(
  limits: StateLimits,
  steps: Step[],
  encoded: { count: number } | null = null,
): void {
  const state = createState(limits);
  const model: Model = { limits, tenants: [], streams: [] };
  steps.forEach((step, index) => checkStep(state, model, step, index, encoded));
  checkListings(state, model);
}

describe('kernel against a model', () => {
  it('agrees with the model under the default limits', () => {
    fc.assert(
      fc.property(stepsArb, (steps) => {
        runModel(defaultStateLimits, steps);
      }),
      { numRuns: 300 },
    );
  });

  it('agrees with the model when appends are applied from their encoding (decodeForApply)', () => {
    const encoded = { count: 0 };
    fc.assert(
      fc.property(stepsArb, (steps) => runModel(defaultStateLimits, steps, encoded)),
      { numRuns: 300 },
    );
    assert.ok(encoded.count > 1000, `only ${encoded.count} appends took the encoded path`);
  });

  it('agrees with the model when the tenant and stream tables are small', () => {
    const limits = { tenantCountMax: 3, streamCountMax: 4 };
    fc.assert(
      fc.property(stepsArb, (steps) => runModel(limits, steps)),
      { numRuns: 300 },
    );
  });

  it('reaches every outcome (the generator is not vacuous)', () => {
    const seen = new Set<string>();
    fc.assert(
      fc.property(stepsArb, (steps) => {
        const limits = { tenantCountMax: 3, streamCountMax: 4 };
        const model: Model = { limits, tenants: [], streams: [] };
        steps.forEach((step, index) => {
          if (step.kind === 'seal') {
            const tenant = model.tenants.find((t) => t.id === step.tenantId);
            if (tenant !== undefined) tenant.sealed = true;
            return;
          }
          const expected = modelApply(model, step, metaFor(index));
          seen.add('error' in expected ? expected.error : `ok ${step.kind}`);
        });
      }),
      { numRuns: 300, seed: 20240601 },
    );
    const outcomes = ['ok create_tenant', 'ok create_stream', 'ok append', 'invalid_argument'];
    outcomes.push('tenant_exists', 'tenant_not_found', 'tenant_sealed', 'stream_exists');
    outcomes.push('stream_not_found', 'offset_mismatch', 'limit_exceeded');
    for (const outcome of outcomes) assert.ok(seen.has(outcome), `never saw ${outcome}`);
  });
});
