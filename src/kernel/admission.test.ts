// Proves admission (admission.ts): bytes that do not decode are INVALID_ARGUMENT "command does
// not decode"; a field over its bound is LIMIT_EXCEEDED with the decoder's message; a new tenant
// or stream with a name that breaks the rules is INVALID_ARGUMENT with newNameProblem's message
// (the one the SDK gives); good commands are admitted with their kind. And it proves why the
// rules sit here and not in apply(): apply() still accepts those names, so a journal written
// before the rules replays to the state it had.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { constants } from '../core/constants.js';
import { errorCodes } from '../core/errors.js';
import { asClientId, asOp, asStreamId, asTenantId, asTimestampUs } from '../core/types.js';
import { admitCommand, apply, createState, encodeCommand, newNameProblem } from './kernel.js';
import type { Command } from './kernel.js';

const audit = { actor: 'ops', reason: '', correlationId: null };
const ids = { tenantId: asTenantId(1), streamId: asStreamId(1), expectedOffset: null };
const legacyNames = ['   ', '../../etc/passwd', 'a\u202Eb', '\uFEFFbom', '1'];

describe('admitCommand', () => {
  it('admits good commands with their kind', () => {
    const commands: Command[] = [
      { kind: 'create_tenant', name: 'clinic', audit },
      { kind: 'create_stream', ...ids, name: 'vitals', dataClass: 'PHI', audit },
      { kind: 'append', ...ids, events: [Uint8Array.of(1)], audit },
    ];
    for (const command of commands) {
      assert.deepEqual(admitCommand(encodeCommand(command)), {
        admitted: true,
        kind: command.kind,
      });
    }
  });

  it('refuses undecodable bytes and fields over their bounds with their codes', () => {
    const garbage = admitCommand(Uint8Array.of(9, 9, 9));
    assert.ok(!garbage.admitted);
    assert.equal(garbage.error.code, errorCodes.invalid_argument);
    assert.match(garbage.error.message, /^command does not decode: /);
    const big = new Uint8Array(constants.eventSizeBytesMax + 10);
    const append = admitCommand(encodeCommand({ kind: 'append', ...ids, events: [big], audit }));
    assert.ok(!append.admitted);
    assert.equal(append.error.code, errorCodes.limit_exceeded);
    const limit = constants.eventSizeBytesMax;
    assert.equal(
      append.error.message,
      `event 0 is ${big.length} bytes, over the limit of ${limit} bytes`,
    );
  });

  it('refuses new names that break the rules, with the message the SDK gives', () => {
    for (const name of legacyNames) {
      const tenant = admitCommand(encodeCommand({ kind: 'create_tenant', name, audit }));
      assert.deepEqual(tenant, { admitted: false, error: newNameProblem(name, 'tenant') });
      const command: Command = { kind: 'create_stream', ...ids, name, dataClass: 'PHI', audit };
      const stream = admitCommand(encodeCommand(command));
      assert.deepEqual(stream, { admitted: false, error: newNameProblem(name, 'stream') });
    }
  });

  it('leaves apply() as it was, so names already in a journal replay', () => {
    const state = createState();
    const clientId = asClientId('abcdefabcdefabcdefabcdefabcdefab');
    legacyNames.forEach((name, index) => {
      const op = asOp(index + 1);
      const meta = { op, timestampUs: asTimestampUs(100 * (index + 1)), clientId, requestIndex: 0 };
      const outcome = apply(state, { kind: 'create_tenant', name, audit }, meta);
      assert.equal(outcome.result.status, 'ok', JSON.stringify(name));
    });
  });
});
