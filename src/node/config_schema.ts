// The shape of a kimberlite-server configuration (DESIGN.md §6): the Config type, one zod
// schema per key, the checks across keys, and the defaults. config.ts loads a Config from flags,
// environment, file and defaults against these schemas; config_render.ts prints one.
//
// Invariants:
// - the schemas and the Config type list the same sections and keys (proved at compile time),
//   and a schema's output is a Config without a cast;
// - every schema's message says what is accepted, so that an operator can fix a value without
//   reading the docs; a check across keys names the other key (config.ts quotes its value);
// - defaultConfig() passes every schema and check: a single node starts with nothing set;
// - the order of the keys here is the order of --show-config and of the docs.
// Names are snake_case everywhere: in the file, in the environment, in Config and in errors.

import { z } from 'zod';
import { constants } from '../core/constants.js';
import { assert } from '../core/assert.js';
import {
  canonicalHostPort,
  hostPortAccepted,
  listenersClash,
  splitHostPort,
} from './config_address.js';

/** The replica/client listener and the process lifecycle. */
export interface ServerConfig {
  /** host:port of the replica and client protocol; also this node's entry in a 1-node cluster. */
  readonly address: string;
  /** host:port of the ops HTTP server (/metrics, /health/*, /status, /debug/*). */
  readonly metrics_address: string;
  /** Client connections served at once; at most constants.connectionCountMax. */
  readonly max_connections: number;
  /** How long a graceful shutdown may take before the process exits anyway. */
  readonly shutdown_timeout_ms: number;
  /** A client connection that completes no frame for this long is closed. */
  readonly idle_timeout_ms: number;
  /** A frame whose first bytes arrived must be complete within this. */
  readonly frame_timeout_ms: number;
  /** Bytes held for incomplete frames across all client connections. */
  readonly frame_buffer_budget_bytes: number;
  /** Distinct sessions that may register over one client connection. */
  readonly sessions_per_connection_max: number;
  /** Session registrations one connection may make per second, after its burst. */
  readonly session_registrations_per_second: number;
  /** Session registrations one connection may make at once. */
  readonly session_registration_burst: number;
}

/** Who is in the cluster and which replica this process is. */
export interface ClusterConfig {
  /** Must be the same on every replica; a replica with another name is refused. */
  readonly name: string;
  /** This replica's index into `peers` (0-based). */
  readonly node_id: number;
  /** Every replica's host:port, in replica order. */
  readonly peers: readonly string[];
}

/** The data directory and its journal. */
export interface StorageConfig {
  readonly data_dir: string;
  /** A journal segment is closed and a new one started past this size. */
  readonly segment_size_bytes: number;
  /**
   * Below this much free space on the data directory's filesystem, writes are refused
   * (KMB_ERR_STORAGE_FULL) and /health/ready says disk_full; 0 refuses only on ENOSPC.
   */
  readonly disk_free_bytes_min: number;
}

/** Timing and bounds of Viewstamped Replication. */
export interface ConsensusConfig {
  /** Wall-clock length of one tick; timeouts are counted in ticks. */
  readonly tick_ms: number;
  readonly heartbeat_ms: number;
  readonly election_timeout_ms: number;
  /** Prepares in flight at the primary. */
  readonly pipeline_max: number;
  /** Client requests batched into one prepare. */
  readonly batch_max_requests: number;
  /** When false the primary prepares one request at a time. */
  readonly batching_enabled: boolean;
  /** Client sessions kept in the replicated client table; must be equal on every replica. */
  readonly client_sessions_max: number;
}

export type LogFormat = 'json' | 'text';

/** Logs, metrics, traces and push exporters. */
export interface TelemetryConfig {
  /** A level (`info`) or directives per target (`kimberlite=info,kimberlite_vsr=debug`). */
  readonly log_level: string;
  readonly log_format: LogFormat;
  /** Serve Prometheus /metrics on the metrics address. */
  readonly metrics_enabled: boolean;
  readonly tracing_enabled: boolean;
  /** Where spans are sent (OTLP over HTTP); required when tracing is enabled. */
  readonly tracing_endpoint?: string;
  /**
   * Share (0..1) of requests traced when their caller sent no sampled trace context; a caller's
   * sampled context is always followed.
   */
  readonly tracing_sample_ratio: number;
  /** Where metrics are pushed (OTLP over HTTP); unset means no OTLP metrics push. */
  readonly otlp_endpoint?: string;
  /** Period of the push exporters (OTLP metrics, StatsD). */
  readonly export_interval_secs: number;
  /** host:port of a StatsD daemon (UDP); unset means no StatsD push. */
  readonly statsd_address?: string;
  readonly statsd_prefix: string;
  /** service.name on traces and OTLP metrics. */
  readonly service_name: string;
  /** Who the ops port's /debug/* paths answer: loopback clients, any client, or nobody. */
  readonly debug_endpoints: DebugEndpointsSetting;
  /** Ops HTTP connections open at once; at the cap one with no request in progress is shed. */
  readonly ops_max_connections: number;
  /** An ops request's headers must arrive within this (idle new connections included). */
  readonly ops_headers_timeout_ms: number;
  /** A whole ops request must arrive within this; at least ops_headers_timeout_ms. */
  readonly ops_request_timeout_ms: number;
  /** An idle keep-alive ops connection is closed after this. */
  readonly ops_keep_alive_timeout_ms: number;
}

export type DebugEndpointsSetting = 'loopback' | 'any' | 'off';

export interface Config {
  readonly server: ServerConfig;
  readonly cluster: ClusterConfig;
  readonly storage: StorageConfig;
  readonly consensus: ConsensusConfig;
  readonly telemetry: TelemetryConfig;
}

export type ConfigSection = keyof Config;
/** A key as `section.key`, e.g. `consensus.heartbeat_ms`. */
export type ConfigKey = {
  [S in ConfigSection]: `${S}.${keyof Config[S] & string}`;
}[ConfigSection];
export type ConfigSource = 'default' | 'file' | 'env' | 'flag';
export type ConfigSources = Record<ConfigKey, ConfigSource>;

// ---------------------------------------------------------------------------------------------
// Schemas of single values. Every message says what is accepted, so that an operator can fix the
// value without reading the docs.

function intIn(min: number, max: number) {
  const message = `must be an integer from ${min} to ${max}`;
  return z.int({ error: message }).min(min, { error: message }).max(max, { error: message });
}

const booleanSchema = z.boolean({ error: 'must be true or false' });

function ratioSchema() {
  const message = 'must be a number from 0 to 1 (a share: 0.01 is 1%)';
  return z.number({ error: message }).min(0, { error: message }).max(1, { error: message });
}

/** A string whose content `problemOf` judges; its complaint is followed by what is accepted. */
function checkedString(accepted: string, problemOf: (text: string) => string | undefined) {
  return z.string({ error: `must be ${accepted}` }).superRefine((text, ctx) => {
    const problem = problemOf(text);
    if (problem !== undefined) {
      ctx.addIssue({ code: 'custom', message: `${problem}; must be ${accepted}` });
    }
  });
}

function hostPortSchema() {
  return checkedString(hostPortAccepted, (text) => {
    const result = splitHostPort(text);
    return typeof result === 'string' ? result : undefined;
  });
}

function peersSchema() {
  const max = constants.replicaCountMax;
  const count = `must list from 1 to ${max} replicas`;
  return z
    .array(hostPortSchema(), { error: `must be a list of ${hostPortAccepted} strings` })
    .min(1, { error: count })
    .max(max, { error: count })
    .superRefine((peers, ctx) => {
      const firstIndex = new Map<string, number>();
      peers.forEach((peer, index) => {
        const canonical = canonicalHostPort(peer);
        const first = firstIndex.get(canonical);
        if (first === undefined) {
          firstIndex.set(canonical, index);
          return;
        }
        ctx.addIssue({
          code: 'custom',
          message:
            `entries ${first + 1} and ${index + 1} are both "${peer}"; ` +
            'every replica needs its own address',
        });
      });
    });
}

const logLevels = ['off', 'error', 'warn', 'info', 'debug', 'trace'];
const logTargetPattern = /^[A-Za-z0-9_][A-Za-z0-9_:.-]*$/;

function logLevelProblem(text: string): string | undefined {
  if (text.length > 1024) return 'it is longer than 1024 characters';
  for (const part of text.split(',')) {
    const directive = part.trim();
    const equals = directive.indexOf('=');
    const target = equals === -1 ? undefined : directive.slice(0, equals);
    const level = equals === -1 ? directive : directive.slice(equals + 1);
    if (target !== undefined && !logTargetPattern.test(target)) {
      return `"${target}" is not a module name`;
    }
    if (!logLevels.includes(level.toLowerCase())) return `"${directive}" has no valid level`;
  }
  return undefined;
}

function httpUrlProblem(text: string): string | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return 'it is not a URL';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return `the scheme "${url.protocol}" is not http or https`;
  }
  return url.hostname === '' ? 'the host is missing' : undefined;
}

const httpUrlAccepted = 'an http:// or https:// URL, as in "http://localhost:4318/v1/traces"';

const MiB = 1024 * 1024;

/** One schema per key. The order here is the order of --show-config and of the docs. */
const shapes = {
  server: {
    address: hostPortSchema(),
    metrics_address: hostPortSchema(),
    max_connections: intIn(1, constants.connectionCountMax),
    shutdown_timeout_ms: intIn(0, 300_000),
    idle_timeout_ms: intIn(100, 86_400_000),
    frame_timeout_ms: intIn(100, 3_600_000),
    frame_buffer_budget_bytes: intIn(constants.frameSizeBytesMax, 64 * 1024 * MiB),
    sessions_per_connection_max: intIn(1, constants.clientSessionCountMax),
    session_registrations_per_second: intIn(1, 1_000_000),
    session_registration_burst: intIn(1, constants.clientSessionCountMax),
  },
  cluster: {
    name: checkedString(
      "1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit",
      (text) => (/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(text) ? undefined : 'it is not a name'),
    ),
    node_id: intIn(0, constants.replicaCountMax - 1),
    peers: peersSchema(),
  },
  storage: {
    data_dir: checkedString('a non-empty path of at most 4096 characters, without NUL', (text) =>
      text.length === 0 || text.length > 4096 || text.includes('\0')
        ? 'it is not a path'
        : undefined,
    ),
    segment_size_bytes: intIn(MiB, constants.journalSegmentSizeBytesMax),
    disk_free_bytes_min: intIn(0, constants.diskFreeBytesMinMax),
  },
  consensus: {
    tick_ms: intIn(1, 1000),
    heartbeat_ms: intIn(1, 60_000),
    election_timeout_ms: intIn(2, 300_000),
    pipeline_max: intIn(1, constants.pipelinePrepareCountMax),
    batch_max_requests: intIn(1, constants.prepareRequestCountMax),
    batching_enabled: booleanSchema,
    client_sessions_max: intIn(1, constants.clientSessionCountMax),
  },
  telemetry: {
    log_level: checkedString(
      `a level (${logLevels.join(', ')}) or a comma list of module=level directives, ` +
        'as in "kimberlite=info,kimberlite_vsr=debug"',
      logLevelProblem,
    ),
    log_format: z.enum(['json', 'text'], { error: 'must be "json" or "text"' }),
    metrics_enabled: booleanSchema,
    tracing_enabled: booleanSchema,
    tracing_endpoint: checkedString(httpUrlAccepted, httpUrlProblem).exactOptional(),
    tracing_sample_ratio: ratioSchema(),
    otlp_endpoint: checkedString(httpUrlAccepted, httpUrlProblem).exactOptional(),
    export_interval_secs: intIn(1, 3600),
    statsd_address: hostPortSchema().exactOptional(),
    statsd_prefix: checkedString("0 to 64 letters, digits, '.', '_' or '-'", (text) =>
      /^[A-Za-z0-9._-]{0,64}$/.test(text) ? undefined : 'it is not a metric prefix',
    ),
    service_name: checkedString('1 to 128 printable characters', (text) =>
      /^[^\p{Cc}]{1,128}$/u.test(text) ? undefined : 'it is not a service name',
    ),
    debug_endpoints: z.enum(['loopback', 'any', 'off'], {
      error: 'must be "loopback", "any" or "off"',
    }),
    ops_max_connections: intIn(1, constants.opsConnectionCountMax),
    ops_headers_timeout_ms: intIn(constants.opsTimeoutMsMin, constants.opsTimeoutMsMax),
    ops_request_timeout_ms: intIn(constants.opsTimeoutMsMin, constants.opsTimeoutMsMax),
    ops_keep_alive_timeout_ms: intIn(constants.opsTimeoutMsMin, constants.opsTimeoutMsMax),
  },
};

// Compile-time proof that the schemas and the Config type list the same keys.
type SameKeys<A, B> = [Exclude<keyof A, keyof B>, Exclude<keyof B, keyof A>] extends [never, never]
  ? true
  : false;
const _shapesMatchConfig: { [S in ConfigSection]: SameKeys<Config[S], (typeof shapes)[S]> } = {
  server: true,
  cluster: true,
  storage: true,
  consensus: true,
  telemetry: true,
};

export const configSections: readonly ConfigSection[] = [
  'server',
  'cluster',
  'storage',
  'consensus',
  'telemetry',
];

export const sectionKeys = new Map<ConfigSection, readonly string[]>(
  configSections.map((section) => [section, Object.keys(shapes[section])]),
);

/** Every key, in the order of --show-config. */
export const configKeys: readonly ConfigKey[] = configSections.flatMap((section) =>
  (sectionKeys.get(section) ?? []).map((name) => `${section}.${name}` as ConfigKey),
);

export const optionalKeys: ReadonlySet<ConfigKey> = new Set<ConfigKey>([
  'telemetry.tracing_endpoint',
  'telemetry.otlp_endpoint',
  'telemetry.statsd_address',
]);

export function splitKey(key: ConfigKey): [ConfigSection, string] {
  const dot = key.indexOf('.');
  return [key.slice(0, dot) as ConfigSection, key.slice(dot + 1)];
}

export function fieldSchema(key: ConfigKey): z.ZodType {
  const [section, name] = splitKey(key);
  const shape: Record<string, z.ZodType> = shapes[section];
  const schema = shape[name];
  assert(schema !== undefined, `no schema for ${key}`);
  return schema;
}

/** A value of a Config, or of any nested table, by `section.key`. */
export function valueAt(table: unknown, key: ConfigKey): unknown {
  const [section, name] = splitKey(key);
  const inner = isTable(table) ? table[section] : undefined;
  return isTable(inner) ? inner[name] : undefined;
}

export function isTable(value: unknown): value is Record<string, unknown> {
  return (
    typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date)
  );
}

// ---------------------------------------------------------------------------------------------
// The whole configuration and the rules that join keys.

/** Adds an issue on `key` that points at `other`, whose value the message will quote. */
function addCrossIssue(ctx: z.RefinementCtx, key: ConfigKey, message: string, other: ConfigKey) {
  ctx.addIssue({ code: 'custom', path: splitKey(key), message, params: { other } });
}

function checkAcrossKeys(config: z.output<typeof unrefinedSchema>, ctx: z.RefinementCtx): void {
  const { server, cluster, consensus, telemetry } = config;
  if (cluster.node_id >= cluster.peers.length) {
    const message = `must be less than the number of [cluster] peers (${cluster.peers.length})`;
    addCrossIssue(ctx, 'cluster.node_id', message, 'cluster.peers');
  }
  if (consensus.heartbeat_ms >= consensus.election_timeout_ms) {
    const message = 'must be less than [consensus] election_timeout_ms';
    addCrossIssue(ctx, 'consensus.heartbeat_ms', message, 'consensus.election_timeout_ms');
  }
  if (consensus.tick_ms > consensus.heartbeat_ms) {
    const message = 'must not exceed [consensus] heartbeat_ms (a heartbeat needs a tick)';
    addCrossIssue(ctx, 'consensus.tick_ms', message, 'consensus.heartbeat_ms');
  }
  if (listenersClash(server.address, server.metrics_address)) {
    const message = 'must differ from [server] address (the two listeners need their own ports)';
    addCrossIssue(ctx, 'server.metrics_address', message, 'server.address');
  }
  if (telemetry.ops_headers_timeout_ms > telemetry.ops_request_timeout_ms) {
    const message = 'must not exceed [telemetry] ops_request_timeout_ms (headers are in a request)';
    const other = 'telemetry.ops_request_timeout_ms';
    addCrossIssue(ctx, 'telemetry.ops_headers_timeout_ms', message, other);
  }
  if (telemetry.tracing_enabled && telemetry.tracing_endpoint === undefined) {
    const message = 'needs [telemetry] tracing_endpoint, the URL that spans are sent to';
    addCrossIssue(ctx, 'telemetry.tracing_enabled', message, 'telemetry.tracing_endpoint');
  }
}

const unrefinedSchema = z.strictObject({
  server: z.strictObject(shapes.server),
  cluster: z.strictObject(shapes.cluster),
  storage: z.strictObject(shapes.storage),
  consensus: z.strictObject(shapes.consensus),
  telemetry: z.strictObject(shapes.telemetry),
});

export const configSchema = unrefinedSchema.superRefine(checkAcrossKeys);

// A zod output must be usable as a Config without a cast.
const _schemaOutputIsConfig = (output: z.output<typeof configSchema>): Config => output;

/** What a file may hold: any subset of the sections and keys, and nothing else. */
export const fileSchema = z.strictObject({
  server: z.strictObject(shapes.server).partial().optional(),
  cluster: z.strictObject(shapes.cluster).partial().optional(),
  storage: z.strictObject(shapes.storage).partial().optional(),
  consensus: z.strictObject(shapes.consensus).partial().optional(),
  telemetry: z.strictObject(shapes.telemetry).partial().optional(),
});

/** The configuration of a single node started with nothing set. */
export function defaultConfig(): Config {
  const address = '127.0.0.1:7001';
  return {
    server: {
      address,
      metrics_address: '127.0.0.1:9090',
      max_connections: constants.connectionCountMax,
      shutdown_timeout_ms: 5000,
      idle_timeout_ms: constants.connectionIdleTimeoutMsDefault,
      frame_timeout_ms: constants.connectionFrameTimeoutMsDefault,
      frame_buffer_budget_bytes: constants.frameBufferBudgetBytesDefault,
      sessions_per_connection_max: constants.connectionSessionCountMaxDefault,
      session_registrations_per_second: constants.sessionRegisterRatePerSecondDefault,
      session_registration_burst: constants.sessionRegisterBurstDefault,
    },
    cluster: { name: 'default', node_id: 0, peers: [address] },
    storage: {
      data_dir: './data',
      segment_size_bytes: constants.journalSegmentSizeBytesMax,
      disk_free_bytes_min: constants.diskFreeBytesMinDefault,
    },
    consensus: {
      tick_ms: 10,
      heartbeat_ms: 100,
      election_timeout_ms: 1000,
      pipeline_max: constants.pipelinePrepareCountMax,
      batch_max_requests: constants.prepareRequestCountMax,
      batching_enabled: true,
      client_sessions_max: constants.clientSessionCountMax,
    },
    telemetry: {
      log_level: 'info',
      log_format: 'json',
      metrics_enabled: true,
      tracing_enabled: false,
      tracing_sample_ratio: 0.001,
      export_interval_secs: 10,
      statsd_prefix: 'kimberlite',
      service_name: 'kimberlite',
      debug_endpoints: 'loopback',
      ops_max_connections: constants.opsConnectionCountDefault,
      ops_headers_timeout_ms: constants.opsHeadersTimeoutMsDefault,
      ops_request_timeout_ms: constants.opsRequestTimeoutMsDefault,
      ops_keep_alive_timeout_ms: constants.opsKeepAliveTimeoutMsDefault,
    },
  };
}
