// Proves apply()'s rules one by one, and that it is all-or-nothing: ids are handed out from 1
// in commit order; each error has its stable code and a useful message (offset_mismatch names
// both offsets; a cross-tenant stream looks exactly like a missing one); bounds give
// limit_exceeded; sealed tenants refuse writes; effects describe exactly what changed; and any
// rejected command — including an append whose last event is the only bad one — leaves the
// state's digest unchanged, checked both on hand-picked cases and on random failing commands.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { toHex } from '../core/checksum.js';
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
  stateDigest,
  stateInvariants,
  streamById,
  streamGenesis,
} from './kernel.js';
import type { ApplyOutcome, Audit, Command, CommandMeta, DataClass, State } from './kernel.js';

const clientId = asClientId('abcdefabcdefabcdefabcdefabcdefab');
const audit: Audit = { actor: 'ops@example', reason: 'unit test', correlationId: null };
let opNext = 1;

function meta(): CommandMeta {
  const op = asOp(opNext++);
  return { op, timestampUs: asTimestampUs(op * 100), clientId, requestIndex: 0 };
}

function createTenant(state: State, name: string, withAudit = audit): ApplyOutcome {
  return apply(state, { kind: 'create_tenant', name, audit: withAudit }, meta());
}

function createStream(
  state: State,
  tenantId: number,
  name: string,
  dataClass: DataClass = 'PHI',
): ApplyOutcome {
  const command: Command = {
    kind: 'create_stream',
    tenantId: asTenantId(tenantId),
    name,
    dataClass,
    audit,
  };
  return apply(state, command, meta());
}

function append(
  state: State,
  ids: { tenantId: number; streamId: number },
  events: Uint8Array[],
  expectedOffset: number | null = null,
): ApplyOutcome {
  const command: Command = {
    kind: 'append',
    tenantId: asTenantId(ids.tenantId),
    streamId: asStreamId(ids.streamId),
    expectedOffset: expectedOffset === null ? null : asOffset(expectedOffset),
    events,
    audit,
  };
  return apply(state, command, meta());
}

function expectError(outcome: ApplyOutcome, name: ErrorName, message?: RegExp): void {
  assert.equal(outcome.result.status, 'error');
  if (outcome.result.status !== 'error') return;
  assert.equal(outcome.result.code, errorCodes[name]);
  if (message !== undefined) assert.match(outcome.result.message, message);
  assert.deepStrictEqual(outcome.effects, []);
}

/** Two tenants with one stream each: tenant 1 owns stream 1, tenant 2 owns stream 2. */
function twoTenants(): State {
  const state = createState();
  createTenant(state, 'alpha');
  createTenant(state, 'beta');
  createStream(state, 1, 'orders');
  createStream(state, 2, 'orders');
  return state;
}

const bytes = (...values: number[]): Uint8Array => new Uint8Array(values);

describe('apply', () => {
  it('assigns tenant and stream ids from 1 in commit order', () => {
    const state = createState();
    const a = createTenant(state, 'a').result;
    const b = createTenant(state, 'b').result;
    assert.ok(a.status === 'ok' && a.kind === 'create_tenant' && a.tenantId === 1);
    assert.ok(b.status === 'ok' && b.kind === 'create_tenant' && b.tenantId === 2);
    const s1 = createStream(state, 2, 'x').result;
    const s2 = createStream(state, 1, 'x').result;
    assert.ok(s1.status === 'ok' && s1.kind === 'create_stream' && s1.streamId === 1);
    assert.ok(s2.status === 'ok' && s2.kind === 'create_stream' && s2.streamId === 2);
    assert.equal(s2.tenantId, 1);
    stateInvariants(state);
  });

  it('reports effects that match the change', () => {
    const state = createState();
    assert.deepStrictEqual(createTenant(state, 't').effects, [
      { kind: 'tenant_created', tenantId: 1, name: 't' },
    ]);
    assert.deepStrictEqual(createStream(state, 1, 's', 'Public').effects, [
      { kind: 'stream_created', tenantId: 1, streamId: 1, name: 's', dataClass: 'Public' },
    ]);
    const m: CommandMeta = { ...meta(), requestIndex: 7 };
    const events = [bytes(1), bytes(2), bytes(3)];
    const command: Command = {
      kind: 'append',
      tenantId: asTenantId(1),
      streamId: asStreamId(1),
      expectedOffset: asOffset(0),
      events,
      audit,
    };
    const outcome = apply(state, command, m);
    const { op, timestampUs } = m;
    assert.deepStrictEqual(outcome.effects, [
      {
        kind: 'events_appended',
        ...{ tenantId: 1, streamId: 1, firstOffset: 0, count: 3 },
        ...{ op, requestIndex: 7, timestampUs },
      },
    ]);
    const again = append(state, { tenantId: 1, streamId: 1 }, [bytes(4)], 3).result;
    assert.ok(again.status === 'ok' && again.kind === 'append' && again.firstOffset === 3);
    assert.equal(streamById(state, asTenantId(1), asStreamId(1))?.nextOffset, 4);
  });

  it('rejects bad names and actors with invalid_argument', () => {
    const state = createState();
    expectError(createTenant(state, ''), 'invalid_argument', /tenant name/);
    expectError(createTenant(state, 'tab\there'), 'invalid_argument');
    expectError(
      createTenant(state, 'x'.repeat(constants.tenantNameBytesMax + 1)),
      'invalid_argument',
    );
    expectError(createTenant(state, 'é'.repeat(65)), 'invalid_argument'); // 130 bytes
    expectError(createTenant(state, 'lone \uDC00'), 'invalid_argument');
    expectError(createTenant(state, 'ok', { ...audit, actor: '' }), 'invalid_argument', /actor/);
    const longReason = { ...audit, reason: 'r'.repeat(constants.reasonBytesMax + 1) };
    expectError(createTenant(state, 'ok', longReason), 'invalid_argument', /reason/);
    expectError(createTenant(state, 'ok', { ...audit, correlationId: '' }), 'invalid_argument');
    assert.equal(createTenant(state, 'é'.repeat(64)).result.status, 'ok'); // 128 bytes
    assert.equal(createTenant(state, 'ok', { ...audit, reason: '' }).result.status, 'ok');
    const lying = { kind: 'create_stream', tenantId: asTenantId(1), name: 's', audit };
    const badClass = { ...lying, dataClass: 'Secret' } as unknown as Command;
    expectError(apply(state, badClass, meta()), 'invalid_argument', /data class/);
  });

  it('answers duplicates, unknown tenants and sealed tenants with their codes', () => {
    const state = twoTenants();
    expectError(createTenant(state, 'alpha'), 'tenant_exists', /alpha/);
    expectError(createStream(state, 1, 'orders'), 'stream_exists');
    expectError(createStream(state, 3, 'orders'), 'tenant_not_found', /tenant 3/);
    expectError(createStream(state, 0, 'orders'), 'tenant_not_found');
    expectError(append(state, { tenantId: 9, streamId: 1 }, [bytes(1)]), 'tenant_not_found');
    const beta = state.tenants.get(asTenantId(2));
    assert.ok(beta !== undefined);
    beta.sealed = true; // stands in for a seal command, which does not exist yet
    state.activeTenantCount -= 1;
    assert.equal(activeTenantCount(state), 1);
    expectError(createStream(state, 2, 'new'), 'tenant_sealed');
    expectError(append(state, { tenantId: 2, streamId: 2 }, [bytes(1)]), 'tenant_sealed');
    assert.equal(append(state, { tenantId: 1, streamId: 1 }, [bytes(1)]).result.status, 'ok');
  });

  it('does not leak streams across tenants', () => {
    const state = twoTenants();
    const crossTenant = append(state, { tenantId: 1, streamId: 2 }, [bytes(1)]);
    const missing = append(state, { tenantId: 1, streamId: 3 }, [bytes(1)]);
    expectError(crossTenant, 'stream_not_found', /stream 2 not found in tenant 1/);
    expectError(missing, 'stream_not_found', /stream 3 not found in tenant 1/);
    assert.equal(streamById(state, asTenantId(1), asStreamId(2)), undefined);
    assert.equal(streamById(state, asTenantId(2), asStreamId(2))?.name, 'orders');
  });

  it('checks expected offsets and names both offsets on a mismatch', () => {
    const state = twoTenants();
    assert.equal(
      append(state, { tenantId: 1, streamId: 1 }, [bytes(1), bytes(2)], 0).result.status,
      'ok',
    );
    const stale = append(state, { tenantId: 1, streamId: 1 }, [bytes(3)], 1);
    expectError(stale, 'offset_mismatch', /expected offset 1 but stream 1 is at offset 2/);
  });

  it('bounds appends: no events, too many events, too large an event', () => {
    const state = twoTenants();
    const ids = { tenantId: 1, streamId: 1 };
    expectError(append(state, ids, []), 'invalid_argument');
    const many = new Array<Uint8Array>(constants.appendEventCountMax + 1).fill(bytes(0));
    expectError(append(state, ids, many), 'limit_exceeded');
    const big = new Uint8Array(constants.eventSizeBytesMax + 1);
    expectError(append(state, ids, [bytes(1), big]), 'limit_exceeded', /event 1/);
    const atMax = new Array<Uint8Array>(constants.appendEventCountMax).fill(bytes(0));
    assert.equal(append(state, ids, atMax).result.status, 'ok');
  });

  it('bounds the tenant and stream tables', () => {
    const state = createState({ tenantCountMax: 2, streamCountMax: 1 });
    createTenant(state, 'one');
    createTenant(state, 'two');
    expectError(createTenant(state, 'three'), 'limit_exceeded', /maximum of 2/);
    assert.equal(createStream(state, 1, 's').result.status, 'ok');
    expectError(createStream(state, 2, 's'), 'limit_exceeded', /maximum of 1/);
    stateInvariants(state);
  });

  it('starts each stream at offset 0 with its genesis as chain head', () => {
    const state = twoTenants();
    const stream = streamById(state, asTenantId(2), asStreamId(2));
    assert.ok(stream !== undefined);
    assert.equal(stream.nextOffset, 0);
    assert.equal(toHex(stream.chainHead), toHex(streamGenesis(asTenantId(2), asStreamId(2))));
  });
});

describe('apply is all-or-nothing', () => {
  it('leaves the digest unchanged for every hand-picked failing command', () => {
    const state = twoTenants();
    append(state, { tenantId: 1, streamId: 1 }, [bytes(1)]);
    const before = toHex(stateDigest(state));
    const big = new Uint8Array(constants.eventSizeBytesMax + 1);
    const failures = [
      append(state, { tenantId: 1, streamId: 1 }, [bytes(1), bytes(2), big]),
      append(state, { tenantId: 1, streamId: 1 }, [bytes(1)], 0),
      append(state, { tenantId: 1, streamId: 2 }, [bytes(1)]),
      append(state, { tenantId: 1, streamId: 1 }, []),
      createStream(state, 1, 'orders'),
      createTenant(state, 'beta'),
      createTenant(state, ''),
    ];
    for (const outcome of failures) assert.equal(outcome.result.status, 'error');
    assert.equal(toHex(stateDigest(state)), before);
    stateInvariants(state);
  });

  it('leaves the digest unchanged for random failing commands', () => {
    const ids = fc.record({
      tenantId: fc.integer({ min: 0, max: 3 }).map(asTenantId),
      streamId: fc.integer({ min: 0, max: 3 }).map(asStreamId),
    });
    const commandArb: fc.Arbitrary<Command> = fc.oneof(
      fc
        .constantFrom('alpha', 'beta', '', 'gamma')
        .map((name): Command => ({ kind: 'create_tenant', name, audit })),
      fc.tuple(ids, fc.constantFrom('orders', 'x', '')).map(([{ tenantId }, name]): Command => ({
        kind: 'create_stream',
        tenantId,
        name,
        dataClass: dataClasses[0],
        audit,
      })),
      fc
        .tuple(
          ids,
          fc.option(fc.integer({ min: 0, max: 3 }), { nil: null }),
          fc.integer({ min: 0, max: 3 }),
        )
        .map(([{ tenantId, streamId }, expected, count]): Command => ({
          kind: 'append',
          tenantId,
          streamId,
          expectedOffset: expected === null ? null : asOffset(expected),
          events: new Array<Uint8Array>(count).fill(bytes(9)),
          audit,
        })),
    );
    fc.assert(
      fc.property(fc.array(commandArb, { maxLength: 30, size: 'max' }), (commands) => {
        const state = twoTenants();
        for (const command of commands) {
          const before = toHex(stateDigest(state));
          const outcome = apply(state, command, meta());
          if (outcome.result.status === 'error') assert.equal(toHex(stateDigest(state)), before);
          else assert.notEqual(toHex(stateDigest(state)), before);
        }
        stateInvariants(state);
      }),
      { numRuns: 200 },
    );
  });
});
