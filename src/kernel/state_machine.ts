// Wires the kernel into the replica: the replica hands over a committed request's encoded
// command; this decodes it (an append's events left encoded, decodeForApply), applies it to the
// kernel state and encodes the result. Decoding failures become a deterministic error result
// (the node validates commands before they enter the log, so this only guards against a log
// written by a faulty primary).

import { DecodeError } from '../core/binary.js';
import { errorCodes } from '../core/errors.js';
import { apply } from './apply.js';
import { decodeForApply, encodeResult } from './command.js';
import type { CommandKind, CommandResult } from './command.js';
import type { KernelEffect } from './outcome.js';
import type { State } from './state.js';
import type { StateMachine } from '../vsr/replica_options.js';

export interface KernelOutput {
  readonly commandKind: CommandKind | null;
  readonly result: CommandResult;
  readonly effects: readonly KernelEffect[];
}

export function kernelStateMachine(state: State): StateMachine<KernelOutput> {
  return {
    apply(body, meta) {
      let outcome: { result: CommandResult; effects: readonly KernelEffect[] };
      let commandKind: CommandKind | null = null;
      try {
        // The append's events stay in `body`: no view per event (kernel/command.ts).
        const command = decodeForApply(body);
        commandKind = command.kind;
        outcome = apply(state, command, meta);
      } catch (error) {
        if (!(error instanceof DecodeError)) throw error;
        const result: CommandResult = {
          status: 'error',
          code: errorCodes.invalid_argument,
          message: `command does not decode: ${error.message}`,
        };
        outcome = { result, effects: [] };
      }
      return {
        result: encodeResult(outcome.result),
        output: { commandKind, result: outcome.result, effects: outcome.effects },
      };
    },
  };
}
