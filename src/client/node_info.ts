// Operator queries addressed to one node: its status (the document GET /status serves) and the
// history of view changes it saw. Unlike the Client's other calls these go to one named address,
// with no failover, no retry and a short timeout: an operator who asks "what does replica 2
// say?" needs replica 2's own answer, or the reason there is none, never another replica's.
//
// The node sends both answers as JSON text (net/client_protocol.ts, queries `node_status` and
// `view_changes`). They are parsed here, at the edge: a document that does not have the shape
// below is a KMB_ERR_FRAME_MALFORMED naming the node, never an assertion. Fields a node does not
// send yet get neutral values (leader null, commit timestamp null, no members), and every field
// it sends, known or not, stays available in `raw`.

import { KmbError, kmbError } from '../core/errors.js';
import type { Query, QueryResult } from '../net/client_protocol.js';
import { formatAddress, parseAddress } from './address.js';
import { Connection, errorFromMessage, queryKey } from './connection.js';

/** One replica as a node lists it in its status. */
export interface ClusterMember {
  readonly nodeId: number;
  readonly address: string;
  /** Whether the node has a live link to this replica (always true for itself); null if unsaid. */
  readonly connected: boolean | null;
  readonly isLeader: boolean;
  /** This entry is the answering node itself. */
  readonly self: boolean;
}

/** A node's own account of itself and of the cluster (the /status document). */
export interface NodeStatus {
  readonly nodeId: number;
  /** 'normal' | 'view_change' | 'recovering' | 'shutting_down' (kept open for new states). */
  readonly status: string;
  readonly view: number;
  readonly commitNumber: number;
  readonly opNumber: number;
  /** This node is a normal leader. */
  readonly isLeader: boolean;
  /** The leader this node knows of (a replica index), or null. */
  readonly leader: number | null;
  readonly clusterSize: number;
  readonly healthyReplicas: number | null;
  /**
   * Whether the node reaches a quorum, itself included (a leader: its backups answer; others:
   * live links); null if the node does not say.
   */
  readonly quorumReachable: boolean | null;
  readonly clusterName: string;
  readonly clusterMembers: readonly ClusterMember[];
  /** Timestamp (µs since the epoch) of the prepare at commitNumber; 0 if none, null if unsaid. */
  readonly commitTimestampUs: number | null;
  /** The document exactly as the node sent it, every field included. */
  readonly raw: Readonly<Record<string, unknown>>;
}

/** One view change as one node saw it. */
export interface ViewChange {
  readonly startedAt: string;
  /** null while the view change has not finished. */
  readonly finishedAt: string | null;
  readonly oldView: number;
  readonly view: number;
  readonly reason: string;
  readonly leader: number | null;
  readonly durationMs: number | null;
}

export interface NodeQueryOptions {
  /** The cluster the node must belong to; empty accepts any. */
  readonly clusterName?: string;
  /** The whole budget: connect, hello, query and answer. */
  readonly timeoutMs: number;
}

/** Bounds of the operator queries (HOUSE_RULES §7). */
export const nodeQueryLimits = {
  /** Default budget of one operator query to one node. */
  timeoutMsDefault: 2_000,
  /** Members one status may list (replicas plus standbys, generously). */
  memberCountMax: 64,
  /** View changes one history may hold. */
  viewChangeCountMax: 4096,
} as const;

type OperatorQuery = Extract<Query, { kind: 'node_status' | 'view_changes' }>;

/**
 * Sends one operator query to one node and returns the JSON text it answered with. Throws a
 * KmbError: the node's own error, KMB_ERR_TIMEOUT when nothing came back within timeoutMs, or
 * the connection's failure (refused, closed, wrong cluster).
 */
export async function queryNodeJson(
  address: string,
  query: OperatorQuery,
  options: NodeQueryOptions,
): Promise<string> {
  const parsed = parseAddress(address);
  const where = formatAddress(parsed);
  const deadlineMs = Date.now() + options.timeoutMs;
  const connection = await Connection.open({
    address: parsed,
    clusterName: options.clusterName ?? '',
    connectTimeoutMs: options.timeoutMs,
  });
  try {
    const queryId = 1;
    const remainingMs = Math.max(1, deadlineMs - Date.now());
    const message = { kind: 'query' as const, query: { queryId, query } };
    const outcome = await connection.exchange(queryKey(queryId), message, remainingMs);
    if (outcome.kind === 'timeout') {
      throw kmbError('timeout', `${where} did not answer ${query.kind} in ${options.timeoutMs} ms`);
    }
    if (outcome.kind === 'lost') throw outcome.error;
    const answer = outcome.answer;
    if (answer.kind === 'error') throw errorFromMessage(answer.error, parsed);
    if (answer.kind !== 'query_result') {
      throw kmbError('frame_malformed', `${where} answered ${query.kind} with a ${answer.kind}`);
    }
    return jsonOf(answer.queryResult.result, query.kind, where);
  } finally {
    connection.close();
  }
}

function jsonOf(result: QueryResult, kind: OperatorQuery['kind'], where: string): string {
  if (result.kind !== kind) {
    throw kmbError('frame_malformed', `${where} answered ${kind} with a ${result.kind} result`);
  }
  return result.json;
}

/** Asks one node for its status. */
export async function fetchNodeStatus(
  address: string,
  options: NodeQueryOptions,
): Promise<NodeStatus> {
  const text = await queryNodeJson(address, { kind: 'node_status' }, options);
  return parseNodeStatus(text, address);
}

/** Asks one node for the view changes it saw, oldest first. */
export async function fetchViewChanges(
  address: string,
  options: NodeQueryOptions,
): Promise<ViewChange[]> {
  const text = await queryNodeJson(address, { kind: 'view_changes' }, options);
  return parseViewChanges(text, address);
}

// ----- parsing untrusted JSON -----

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Reads typed fields of one JSON object, naming the node and the field in every complaint. */
class Fields {
  constructor(
    private readonly document: Record<string, unknown>,
    private readonly what: string,
  ) {}

  private bad(key: string, expected: string): KmbError {
    const got = JSON.stringify(this.document[key]) ?? 'nothing';
    return kmbError('frame_malformed', `${this.what}: "${key}" must be ${expected}, got ${got}`);
  }

  count(key: string): number {
    const value = this.document[key];
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
      throw this.bad(key, 'a non-negative integer');
    }
    return value;
  }

  countOrNull(key: string): number | null {
    return this.document[key] === undefined || this.document[key] === null ? null : this.count(key);
  }

  /** A non-negative number, fractions allowed (durations). */
  amountOrNull(key: string): number | null {
    const value = this.document[key];
    if (value === undefined || value === null) return null;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      throw this.bad(key, 'a non-negative number');
    }
    return value;
  }

  text(key: string): string {
    const value = this.document[key];
    if (typeof value !== 'string') throw this.bad(key, 'a string');
    return value;
  }

  textOr(key: string, fallback: string): string {
    return this.document[key] === undefined ? fallback : this.text(key);
  }

  textOrNull(key: string): string | null {
    return this.document[key] === undefined || this.document[key] === null ? null : this.text(key);
  }

  flag(key: string): boolean {
    const value = this.document[key];
    if (typeof value !== 'boolean') throw this.bad(key, 'true or false');
    return value;
  }

  flagOrNull(key: string): boolean | null {
    return this.document[key] === undefined || this.document[key] === null ? null : this.flag(key);
  }

  list(key: string, countMax: number): unknown[] {
    const value = this.document[key];
    if (value === undefined) return [];
    if (!Array.isArray(value)) throw this.bad(key, 'a list');
    if (value.length > countMax) throw this.bad(key, `a list of at most ${countMax} entries`);
    return value;
  }
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw kmbError('frame_malformed', `${what} is not JSON: ${reason}`);
  }
}

function parseMember(value: unknown, index: number, what: string): ClusterMember {
  const where = `${what}, cluster_members[${index}]`;
  if (!isRecord(value)) throw kmbError('frame_malformed', `${where} is not an object`);
  const fields = new Fields(value, where);
  return {
    nodeId: fields.count('node_id'),
    address: fields.textOr('address', ''),
    connected: fields.flagOrNull('connected'),
    isLeader: fields.flagOrNull('is_leader') ?? false,
    self: fields.flagOrNull('self') ?? false,
  };
}

/** Parses a node_status document; `address` names the node in complaints. */
export function parseNodeStatus(text: string, address: string): NodeStatus {
  const what = `node_status from ${address}`;
  const document = parseJson(text, what);
  if (!isRecord(document)) throw kmbError('frame_malformed', `${what} is not a JSON object`);
  const fields = new Fields(document, what);
  const members = fields
    .list('cluster_members', nodeQueryLimits.memberCountMax)
    .map((member, index) => parseMember(member, index, what));
  return {
    nodeId: fields.count('node_id'),
    status: fields.text('status'),
    view: fields.count('view'),
    commitNumber: fields.count('commit_number'),
    opNumber: fields.count('op_number'),
    isLeader: fields.flag('is_leader'),
    leader: fields.countOrNull('leader'),
    clusterSize: fields.countOrNull('cluster_size') ?? Math.max(1, members.length),
    healthyReplicas: fields.countOrNull('healthy_replicas'),
    quorumReachable: fields.flagOrNull('quorum_reachable'),
    clusterName: fields.textOr('cluster_name', ''),
    clusterMembers: members,
    commitTimestampUs: fields.countOrNull('commit_timestamp_us'),
    raw: document,
  };
}

function parseViewChange(value: unknown, index: number, what: string): ViewChange {
  const where = `${what}, entry ${index}`;
  if (!isRecord(value)) throw kmbError('frame_malformed', `${where} is not an object`);
  const fields = new Fields(value, where);
  return {
    startedAt: fields.text('started_at'),
    finishedAt: fields.textOrNull('finished_at'),
    oldView: fields.count('old_view'),
    view: fields.count('view'),
    reason: fields.textOr('reason', ''),
    leader: fields.countOrNull('leader'),
    durationMs: fields.amountOrNull('duration_ms'),
  };
}

/** Parses a view_changes document (a JSON list); `address` names the node in complaints. */
export function parseViewChanges(text: string, address: string): ViewChange[] {
  const what = `view_changes from ${address}`;
  const document = parseJson(text, what);
  if (!Array.isArray(document)) throw kmbError('frame_malformed', `${what} is not a JSON list`);
  if (document.length > nodeQueryLimits.viewChangeCountMax) {
    const max = nodeQueryLimits.viewChangeCountMax;
    throw kmbError('frame_malformed', `${what} lists more than ${max} view changes`);
  }
  return document.map((entry, index) => parseViewChange(entry, index, what));
}
