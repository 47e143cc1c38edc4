// apply(): the one entry point that changes the kernel's State. Every replica calls it for every
// committed command, in log order, with the same meta (taken from the prepare), and so every
// replica computes the same results, effects and State. It is pure apart from mutating the
// State it is given (in place, for speed): no clock, no randomness, no I/O.
//
// Invariants: a command is all-or-nothing (the domain files validate fully before mutating), an
// 'ok' result comes with exactly one effect and an 'error' result with none. Bad client input
// is never asserted on; it becomes an error result with a stable code. The meta comes from our
// own replica code, so a malformed meta is a programmer error and is asserted.

import { assert, unreachable } from '../core/assert.js';
import { constants } from '../core/constants.js';
import { isClientId } from '../core/types.js';
import type { ApplicableCommand } from './command.js';
import { applyAppend } from './events.js';
import type { ApplyOutcome, CommandMeta } from './outcome.js';
import type { State } from './state.js';
import { applyCreateStream } from './streams.js';
import { applyCreateTenant } from './tenants.js';

function checkMeta(meta: CommandMeta): void {
  assert(Number.isSafeInteger(meta.op) && meta.op >= 1, 'commands start at op 1');
  assert(Number.isSafeInteger(meta.timestampUs) && meta.timestampUs >= 0, 'timestamp is a u53');
  assert(Number.isInteger(meta.requestIndex) && meta.requestIndex >= 0, 'request index >= 0');
  assert(meta.requestIndex < constants.prepareRequestCountMax, 'request index within batch');
  assert(isClientId(meta.clientId), 'client id is 32 hex characters');
}

export function apply(state: State, command: ApplicableCommand, meta: CommandMeta): ApplyOutcome {
  checkMeta(meta);
  let outcome: ApplyOutcome;
  switch (command.kind) {
    case 'create_tenant':
      outcome = applyCreateTenant(state, command, meta);
      break;
    case 'create_stream':
      outcome = applyCreateStream(state, command, meta);
      break;
    case 'append':
      outcome = applyAppend(state, command, meta);
      break;
    default:
      return unreachable(command, 'unknown command kind');
  }
  const ok = outcome.result.status === 'ok';
  if (ok) assert(outcome.effects.length === 1, 'an applied command has one effect');
  if (!ok) assert(outcome.effects.length === 0, 'a rejected command has no effects');
  return outcome;
}
