// The kernel's public surface: what the node shell, the replica and the simulator import. The
// kernel is pure and deterministic (DESIGN.md §2): State is changed only by apply(), in log
// order, and read through the queries below. Import from here, not from the domain files.

export { admitCommand } from './admission.js';
export type { Admission } from './admission.js';
export { apply } from './apply.js';
export type { ApplyOutcome, CommandMeta, KernelEffect } from './outcome.js';
export { createState, defaultStateLimits, stateInvariants } from './state.js';
export type { State, StateLimits, Stream, Tenant } from './state.js';
export { activeTenantCount, tenantById, tenantByName, tenantList } from './tenants.js';
export { streamById, streamByName, streamList } from './streams.js';
export { chainDomain, eventLink, linkPrefixSizeBytes, streamGenesis } from './chain.js';
export { stateDigest } from './digest.js';
export { kernelStateMachine } from './state_machine.js';
export type { KernelOutput } from './state_machine.js';
export { newNameProblem } from './names.js';
export type { NameKind } from './names.js';
export {
  dataClasses,
  checkCommand,
  decodeCommand,
  decodeForApply,
  decodeResult,
  encodeCommand,
  encodeResult,
  eventArray,
  eventCountLimitMessage,
  eventFieldName,
  fieldLimitMessage,
  fieldNames,
  isDataClass,
} from './command.js';
export type {
  ApplicableCommand,
  Audit,
  Command,
  CommandKind,
  CommandResult,
  DataClass,
  EncodedEvents,
} from './command.js';
