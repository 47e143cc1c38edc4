// Admission: the checks a command's bytes pass before the node hands them to the replica, and so
// before they can enter the log. Pure: the node shell calls admitCommand() for every client
// request and answers a refusal with its code, unsent to the replica.
//
// - bytes that do not decode as a command: KMB_ERR_INVALID_ARGUMENT "command does not decode";
// - a well-formed command with a field over its bound (CommandLimitError):
//   KMB_ERR_LIMIT_EXCEEDED naming the field, its size and the limit;
// - a new tenant or stream whose name breaks the name rules (names.ts):
//   KMB_ERR_INVALID_ARGUMENT naming the rule.
// Checks that depend on state (a name taken, a missing stream) stay in the kernel's apply().
// The name rules are checked here and not in apply(): see names.ts.

import { DecodeError } from '../core/binary.js';
import { CommandLimitError, checkCommand, decodeCommand } from './command.js';
import type { CommandKind } from './command.js';
import { newNameProblem } from './names.js';
import { errorResult } from './outcome.js';
import type { ErrorResult } from './outcome.js';

export type Admission =
  | { readonly admitted: true; readonly kind: CommandKind }
  | { readonly admitted: false; readonly error: ErrorResult };

function refused(error: ErrorResult): Admission {
  return { admitted: false, error };
}

/** Whether a request's command may go to the replica; see above. */
export function admitCommand(bytes: Uint8Array): Admission {
  let kind: CommandKind;
  try {
    kind = checkCommand(bytes);
  } catch (error) {
    if (error instanceof CommandLimitError) {
      return refused(errorResult('limit_exceeded', error.message));
    }
    if (!(error instanceof DecodeError)) throw error;
    return refused(errorResult('invalid_argument', `command does not decode: ${error.message}`));
  }
  if (kind === 'append') return { admitted: true, kind };
  // Creations are rare: decoding one whole to read its name costs nothing that matters.
  const command = decodeCommand(bytes);
  const problem =
    command.kind === 'create_tenant'
      ? newNameProblem(command.name, 'tenant')
      : command.kind === 'create_stream'
        ? newNameProblem(command.name, 'stream')
        : null;
  return problem === null ? { admitted: true, kind } : refused(problem);
}
