// Configuration of one kimberlite-server process (DESIGN.md §6): the effective settings, where
// each one came from, and how to print them for `kimberlite-server --show-config`.
//
// Sources, strongest first: command-line flags, the environment (KMB_<SECTION>_<KEY>), a TOML
// file (--config PATH or KMB_CONFIG), built-in defaults. Invariants this file keeps:
// - a single node starts with no file, no environment and no flags;
// - every value in a returned Config has passed its schema and the checks across keys;
// - every rejected value raises KMB_ERR_CONFIG_INVALID naming the key as `[section] key`, where
//   the value came from, what was wrong and what is accepted;
// - unknown sections, keys, KMB_<SECTION>_* variables and flags are errors, never ignored,
//   because a misspelt setting that silently keeps its default is the worst misconfiguration.
// Names are snake_case everywhere: in the file, in the environment, in Config and in errors.

import { readFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { parse as parseToml, TomlError } from 'smol-toml';
import { z } from 'zod';
import { constants } from '../core/constants.js';
import { assert } from '../core/assert.js';
import { kmbError, type KmbError } from '../core/errors.js';

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
}

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

/** Command-line flags that set a key (DESIGN.md §6), without the leading `--`. */
export const configFlags = {
  'node-id': 'cluster.node_id',
  'cluster-peers': 'cluster.peers',
  address: 'server.address',
  'metrics-address': 'server.metrics_address',
  'data-dir': 'storage.data_dir',
  'cluster-name': 'cluster.name',
} as const satisfies Record<string, ConfigKey>;
export type ConfigFlagName = keyof typeof configFlags;

/**
 * The runbook's `kimberlite-cli cluster config get|set NAME` names, mapped to our keys, for the
 * CLI to translate them.
 */
export const runbookConfigNames = {
  'election-timeout-ms': 'consensus.election_timeout_ms',
  'heartbeat-interval-ms': 'consensus.heartbeat_ms',
  'max-batch-size': 'consensus.batch_max_requests',
  'batching-enabled': 'consensus.batching_enabled',
} as const satisfies Record<string, ConfigKey>;

export interface LoadConfigOptions {
  /** Flag values as typed on the command line, by flag name without `--`. */
  readonly flags: Partial<Record<ConfigFlagName, string | undefined>>;
  /** Usually process.env; passed in so that tests never touch the real environment. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** The --config flag; when absent, KMB_CONFIG names the file; when both are absent, none. */
  readonly configPath?: string;
  /** Reads a file as UTF-8 text; defaults to fs.readFileSync. */
  readonly readFile?: (path: string) => string;
}

export interface LoadedConfig {
  readonly config: Config;
  /** Which layer each key's value came from. */
  readonly sources: ConfigSources;
  /** The same in words, e.g. `env KMB_LOG` or `file /etc/kimberlite/config.toml`. */
  readonly origins: Record<ConfigKey, string>;
}

export interface HostPort {
  /** A host name, an IPv4 address, or an IPv6 address without its brackets. */
  readonly host: string;
  readonly port: number;
}

// ---------------------------------------------------------------------------------------------
// Host and port.

// Labels of letters, digits, '-' and '_' (container names use '_'), 253 characters in all.
const hostLabel = '[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?';
const hostnamePattern = new RegExp(`^(?=.{1,253}$)${hostLabel}(?:\\.${hostLabel})*$`);

function hostProblem(host: string): string | undefined {
  if (host === '') return 'the host is missing';
  if (/^[0-9.]+$/.test(host)) {
    return isIPv4(host) ? undefined : `"${host}" is not an IPv4 address`;
  }
  return hostnamePattern.test(host) ? undefined : `"${host}" is not a valid host name`;
}

/** Splits `host:port`, or says in words what is wrong with it. */
function splitHostPort(text: string): HostPort | string {
  if (text === '') return 'it is empty';
  if (/\s/.test(text)) return 'it contains white space';
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close === -1) return 'the "[" of the IPv6 address is not closed';
    host = text.slice(1, close);
    if (!isIPv6(host)) return `"${host}" is not an IPv6 address`;
    const rest = text.slice(close + 1);
    if (!rest.startsWith(':')) return 'the ":port" after "]" is missing';
    portText = rest.slice(1);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon === -1) return 'the ":port" is missing';
    host = text.slice(0, colon);
    if (host.includes(':')) return 'an IPv6 address must be in brackets, as in "[::1]:7001"';
    const problem = hostProblem(host);
    if (problem !== undefined) return problem;
    portText = text.slice(colon + 1);
  }
  if (portText === '') return 'the port is missing';
  if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) > 65535) {
    return `the port "${portText}" is not a number from 0 to 65535`;
  }
  return { host, port: Number(portText) };
}

const hostPortAccepted =
  '"host:port" with a port from 0 to 65535 (IPv6 in brackets, as in "[::1]:7001")';

/**
 * Parses `host:port`: a host name, an IPv4 address or a bracketed IPv6 address, then a port from
 * 0 to 65535. Throws KMB_ERR_INVALID_ARGUMENT saying what is wrong.
 */
export function parseHostPort(text: string): HostPort {
  const result = splitHostPort(text);
  if (typeof result === 'string') {
    throw kmbError(
      'invalid_argument',
      `invalid address "${text}": ${result}; expected ${hostPortAccepted}`,
    );
  }
  return result;
}

/** The inverse of parseHostPort: brackets an IPv6 host. */
export function formatHostPort(address: HostPort): string {
  const host = address.host.includes(':') ? `[${address.host}]` : address.host;
  return `${host}:${address.port}`;
}

/** The same endpoint spelt the same way, for comparing addresses. */
function canonicalHostPort(text: string): string {
  const result = splitHostPort(text);
  return typeof result === 'string'
    ? text
    : formatHostPort({ ...result, host: result.host.toLowerCase() });
}

/** Whether two listeners would fight over one port: same port, and same or wildcard host. */
function listenersClash(a: string, b: string): boolean {
  const first = splitHostPort(a);
  const second = splitHostPort(b);
  if (typeof first === 'string' || typeof second === 'string') return false;
  if (first.port !== second.port || first.port === 0) return false;
  const wildcard = (host: string) => host === '0.0.0.0' || host === '::';
  const sameHost = first.host.toLowerCase() === second.host.toLowerCase();
  return sameHost || wildcard(first.host) || wildcard(second.host);
}

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

const sectionKeys = new Map<ConfigSection, readonly string[]>(
  configSections.map((section) => [section, Object.keys(shapes[section])]),
);

/** Every key, in the order of --show-config. */
export const configKeys: readonly ConfigKey[] = configSections.flatMap((section) =>
  (sectionKeys.get(section) ?? []).map((name) => `${section}.${name}` as ConfigKey),
);

const optionalKeys: ReadonlySet<ConfigKey> = new Set<ConfigKey>([
  'telemetry.tracing_endpoint',
  'telemetry.otlp_endpoint',
  'telemetry.statsd_address',
]);

function splitKey(key: ConfigKey): [ConfigSection, string] {
  const dot = key.indexOf('.');
  return [key.slice(0, dot) as ConfigSection, key.slice(dot + 1)];
}

function fieldSchema(key: ConfigKey): z.ZodType {
  const [section, name] = splitKey(key);
  const shape: Record<string, z.ZodType> = shapes[section];
  const schema = shape[name];
  assert(schema !== undefined, `no schema for ${key}`);
  return schema;
}

/** A value of a Config, or of any nested table, by `section.key`. */
function valueAt(table: unknown, key: ConfigKey): unknown {
  const [section, name] = splitKey(key);
  const inner = isTable(table) ? table[section] : undefined;
  return isTable(inner) ? inner[name] : undefined;
}

function isTable(value: unknown): value is Record<string, unknown> {
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

const configSchema = unrefinedSchema.superRefine(checkAcrossKeys);

// A zod output must be usable as a Config without a cast.
const _schemaOutputIsConfig = (output: z.output<typeof configSchema>): Config => output;

/** What a file may hold: any subset of the sections and keys, and nothing else. */
const fileSchema = z.strictObject({
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
    },
    cluster: { name: 'default', node_id: 0, peers: [address] },
    storage: { data_dir: './data', segment_size_bytes: constants.journalSegmentSizeBytesMax },
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
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Messages.

/** A value as TOML would spell it (also used to render the configuration). */
function showValue(value: unknown): string {
  if (typeof value === 'string') return tomlString(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (typeof value === 'bigint') return String(value);
  if (Array.isArray(value)) return `[${value.map(showValue).join(', ')}]`;
  if (value instanceof Date) return value.toISOString();
  return value === undefined ? '(not set)' : '{...}';
}

function tomlString(text: string): string {
  const escaped = text.replace(/[\\"\p{Cc}]/gu, (char) => {
    if (char === '\\' || char === '"') return `\\${char}`;
    return `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`;
  });
  return `"${escaped}"`;
}

function fromWhere(origin: string): string {
  return origin.startsWith('default') ? origin : `from ${origin}`;
}

function showKey(key: ConfigKey): string {
  const [section, name] = splitKey(key);
  return `[${section}] ${name}`;
}

type Issue = z.core.$ZodIssue;

/** `[section] key = value (from origin): what is wrong; what is accepted`. */
function valueProblem(key: ConfigKey, value: unknown, origin: string, issue: Issue): string {
  const at = issue.path[0];
  const entry =
    typeof at === 'number' && Array.isArray(value)
      ? `entry ${at + 1} (${showValue(value[at])}): `
      : '';
  const head = `${showKey(key)} = ${showValue(value)} (${fromWhere(origin)})`;
  return `${head}: ${entry}${issue.message}`;
}

/** A problem with a key that names another key, quoting the other key's value and origin. */
function crossProblem(issue: Issue, merged: ReadonlyMap<ConfigKey, Setting>): string {
  const key = issue.path.slice(0, 2).join('.') as ConfigKey;
  const setting = merged.get(key);
  const problem = valueProblem(key, setting?.value, setting?.origin ?? 'default', issue);
  const other: unknown = issue.code === 'custom' ? issue.params?.['other'] : undefined;
  const otherSetting = typeof other === 'string' ? merged.get(other as ConfigKey) : undefined;
  if (otherSetting === undefined) return problem;
  const otherKey = showKey(other as ConfigKey);
  if (otherSetting.value === undefined) return `${problem}; ${otherKey} is not set`;
  const otherValue = `${showValue(otherSetting.value)} (${fromWhere(otherSetting.origin)})`;
  return `${problem}; ${otherKey} = ${otherValue}`;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i += 1) {
    const current = [i];
    for (let j = 1; j <= b.length; j += 1) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/** The candidate closest to a misspelt word, if any is close enough to be a likely intent. */
function closest(word: string, candidates: readonly string[]): string | undefined {
  const squash = (text: string) => text.toLowerCase().replace(/[^a-z0-9]/g, '');
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const candidate of candidates) {
    const distance =
      squash(candidate) === squash(word) ? 0 : editDistance(word.toLowerCase(), candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/** Sections whose keys include `name`, to point at a key written in the wrong section. */
function sectionsWithKey(name: string): ConfigSection[] {
  return configSections.filter((section) => sectionKeys.get(section)?.includes(name));
}

function unknownKeyProblem(section: ConfigSection, name: string, file: string): string {
  const keys = sectionKeys.get(section) ?? [];
  const elsewhere = sectionsWithKey(name)[0];
  const near = closest(name, keys);
  const hint =
    elsewhere !== undefined
      ? `did you mean [${elsewhere}] ${name}?`
      : near !== undefined
        ? `did you mean ${near}?`
        : `the keys of [${section}] are ${keys.join(', ')}`;
  return `unknown key [${section}] ${name} in ${file} (${hint})`;
}

function unknownTopLevelProblem(name: string, value: unknown, file: string): string {
  const sections = configSections.map((section) => `[${section}]`).join(', ');
  if (isTable(value)) {
    const near = closest(name, configSections);
    const hint = near === undefined ? `the sections are ${sections}` : `did you mean [${near}]?`;
    return `unknown section [${name}] in ${file} (${hint})`;
  }
  const home = sectionsWithKey(name)[0];
  const hint =
    home === undefined ? `the sections are ${sections}` : `did you mean [${home}] ${name}?`;
  return `unknown key ${name} at the top of ${file}, outside any section (${hint})`;
}

function configError(problems: readonly string[]): KmbError {
  return kmbError('config_invalid', problems.map((p) => `invalid configuration: ${p}`).join('\n'));
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

// ---------------------------------------------------------------------------------------------
// Layers. Each layer is validated on its own, so that a bad value is reported even when a
// stronger layer overrides it: the operator should learn about it before it starts to matter.

interface Setting {
  readonly value: unknown;
  readonly source: ConfigSource;
  readonly origin: string;
}

type Layer = Map<ConfigKey, Setting>;

/** Turns the text of a flag or environment variable into the type the key's schema expects. */
function fromText(key: ConfigKey, text: string): unknown {
  const example = optionalKeys.has(key) ? '' : valueAt(defaultConfig(), key);
  if (Array.isArray(example)) return text.split(',').map((part) => part.trim());
  if (typeof example === 'number') {
    return /^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$/.test(text.trim()) ? Number(text) : text;
  }
  if (typeof example === 'boolean') {
    const lower = text.trim().toLowerCase();
    if (lower === 'true' || lower === '1') return true;
    if (lower === 'false' || lower === '0') return false;
  }
  return text;
}

/** Validates one value from text and adds it to a layer, or records what is wrong with it. */
function addTextSetting(
  layer: Layer,
  key: ConfigKey,
  text: string,
  where: { source: ConfigSource; origin: string },
  problems: string[],
): void {
  const value = fromText(key, text);
  const result = fieldSchema(key).safeParse(value);
  const issue = result.error?.issues[0];
  if (issue !== undefined) {
    problems.push(valueProblem(key, value, where.origin, issue));
    return;
  }
  layer.set(key, { value: result.data, ...where });
}

function readFlags(flags: LoadConfigOptions['flags'], problems: string[]): Layer {
  const layer: Layer = new Map();
  const known = Object.keys(configFlags);
  for (const [flag, text] of Object.entries(flags)) {
    if (text === undefined) continue;
    if (!Object.hasOwn(configFlags, flag)) {
      problems.push(`unknown flag --${flag} (the flags are --${known.join(', --')})`);
      continue;
    }
    const key = configFlags[flag as ConfigFlagName];
    addTextSetting(layer, key, text, { source: 'flag', origin: `flag --${flag}` }, problems);
  }
  return layer;
}

/** Other names operators already type, weaker than the canonical KMB_<SECTION>_<KEY>. */
const envAliases: Partial<Record<ConfigKey, readonly string[]>> = {
  'cluster.name': ['KMB_SERVER_CLUSTER_NAME'],
  'telemetry.log_level': ['KMB_LOG', 'RUST_LOG'],
  'telemetry.log_format': ['RUST_LOG_FORMAT'],
};

/** The environment variables that set `key`, strongest first. */
export function configEnvNames(key: ConfigKey): readonly string[] {
  const canonical = `KMB_${key.replace('.', '_')}`.toUpperCase();
  return [canonical, ...(envAliases[key] ?? [])];
}

const envNameToKey = new Map<string, ConfigKey>(
  configKeys.flatMap((key) => configEnvNames(key).map((name): [string, ConfigKey] => [name, key])),
);

function readEnv(env: LoadConfigOptions['env'], problems: string[]): Layer {
  const layer: Layer = new Map();
  for (const key of configKeys) {
    // An empty variable counts as unset, as `KEY=` in a systemd EnvironmentFile usually means.
    const name = configEnvNames(key).find((candidate) => (env[candidate] ?? '') !== '');
    const text = name === undefined ? undefined : env[name];
    if (name === undefined || text === undefined) continue;
    addTextSetting(layer, key, text, { source: 'env', origin: `env ${name}` }, problems);
  }
  const prefixes = configSections.map((section) => `KMB_${section.toUpperCase()}_`);
  for (const [name, text] of Object.entries(env)) {
    if ((text ?? '') === '' || envNameToKey.has(name)) continue;
    if (!prefixes.some((prefix) => name.startsWith(prefix))) continue;
    const near = closest(name, [...envNameToKey.keys()]);
    const hint = near === undefined ? 'see docs/configuration.md' : `did you mean ${near}?`;
    problems.push(`unknown environment variable ${name} (${hint})`);
  }
  return layer;
}

/** Lets `[server] cluster_name` (the troubleshooting guide's spelling) stand for [cluster] name. */
function applyFileAliases(table: Record<string, unknown>, file: string, problems: string[]) {
  const server = table['server'];
  const cluster = table['cluster'] ?? {};
  if (!isTable(server) || !Object.hasOwn(server, 'cluster_name') || !isTable(cluster)) {
    return { table, aliased: false };
  }
  const { cluster_name: name, ...rest } = server;
  if (Object.hasOwn(cluster, 'name')) {
    problems.push(
      `${file} sets both [server] cluster_name and [cluster] name; keep [cluster] name`,
    );
  }
  return { table: { ...table, server: rest, cluster: { ...cluster, name } }, aliased: true };
}

function fileIssueProblems(issues: readonly Issue[], table: unknown, file: string): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const issue of issues) {
    const [section, name] = issue.path;
    if (issue.code === 'unrecognized_keys') {
      for (const unknown of issue.keys) {
        problems.push(
          section === undefined
            ? unknownTopLevelProblem(unknown, isTable(table) ? table[unknown] : undefined, file)
            : unknownKeyProblem(section as ConfigSection, unknown, file),
        );
      }
    } else if (name === undefined) {
      const value = showValue(isTable(table) ? table[String(section)] : undefined);
      problems.push(`[${String(section)}] in ${file} must be a section of keys, not ${value}`);
    } else {
      const key = `${String(section)}.${String(name)}` as ConfigKey;
      if (seen.has(key)) continue;
      seen.add(key);
      const relative = { ...issue, path: issue.path.slice(2) };
      problems.push(valueProblem(key, valueAt(table, key), `file ${file}`, relative));
    }
  }
  return problems;
}

function tomlProblem(file: string, error: unknown): string {
  if (!(error instanceof TomlError)) return `cannot parse ${file} as TOML: ${errorText(error)}`;
  const reason = (error.message.split('\n')[0] ?? '').replace(/^Invalid TOML document: /, '');
  const excerpt = error.codeblock.trimEnd().replace(/^/gm, '    ');
  const position = `line ${error.line}, column ${error.column}`;
  return `cannot parse ${file} as TOML at ${position}: ${reason}\n${excerpt}`;
}

function readFileLayer(options: LoadConfigOptions, problems: string[]): Layer {
  const layer: Layer = new Map();
  const viaEnv = options.configPath === undefined;
  const file = options.configPath ?? (options.env['KMB_CONFIG'] || undefined);
  if (file === undefined) return layer;
  let parsed: Record<string, unknown>;
  try {
    const text = (options.readFile ?? ((path: string) => readFileSync(path, 'utf8')))(file);
    parsed = parseToml(text);
  } catch (error) {
    const how = viaEnv ? 'env KMB_CONFIG' : 'flag --config';
    problems.push(
      error instanceof TomlError
        ? tomlProblem(file, error)
        : `cannot read the configuration file ${file} (from ${how}): ${errorText(error)}`,
    );
    return layer;
  }
  const { table, aliased } = applyFileAliases(parsed, file, problems);
  const result = fileSchema.safeParse(table);
  if (!result.success) {
    problems.push(...fileIssueProblems(result.error.issues, table, file));
    return layer;
  }
  for (const key of configKeys) {
    const value = valueAt(result.data, key);
    if (value === undefined) continue;
    const alias = aliased && key === 'cluster.name' ? ' as [server] cluster_name' : '';
    layer.set(key, { value, source: 'file', origin: `file ${file}${alias}` });
  }
  return layer;
}

// ---------------------------------------------------------------------------------------------
// Merging.

function mergeLayers(strongestFirst: readonly Layer[]): Map<ConfigKey, Setting> {
  const defaults = defaultConfig();
  const merged = new Map<ConfigKey, Setting>();
  for (const key of configKeys) {
    const found = strongestFirst.find((layer) => layer.has(key))?.get(key);
    merged.set(
      key,
      found ?? { value: valueAt(defaults, key), source: 'default', origin: 'default' },
    );
  }
  deriveAddresses(merged);
  return merged;
}

/**
 * The two defaults that depend on other keys: a node with no peers is a cluster of one at its
 * own address; a node given peers but no address listens at its own entry in them, so that a
 * replica is never silently bound somewhere its peers will not look for it.
 */
function deriveAddresses(merged: Map<ConfigKey, Setting>): void {
  const address = merged.get('server.address');
  const peers = merged.get('cluster.peers');
  const nodeId = merged.get('cluster.node_id')?.value;
  if (address === undefined || peers === undefined) return;
  if (peers.source === 'default') {
    const origin = 'default, the same as [server] address';
    merged.set('cluster.peers', { value: [address.value], source: 'default', origin });
  } else if (address.source === 'default' && Array.isArray(peers.value)) {
    const own: unknown = typeof nodeId === 'number' ? peers.value[nodeId] : undefined;
    if (typeof own !== 'string') return;
    const entry = Number(nodeId) + 1;
    const origin = `default, entry ${entry} of [cluster] peers for node_id ${String(nodeId)}`;
    merged.set('server.address', { value: own, source: 'default', origin });
  }
}

function assemble(
  merged: ReadonlyMap<ConfigKey, Setting>,
): Record<string, Record<string, unknown>> {
  const raw: Record<string, Record<string, unknown>> = {};
  for (const section of configSections) raw[section] = {};
  for (const [key, setting] of merged) {
    const [section, name] = splitKey(key);
    const table = raw[section];
    if (table !== undefined && setting.value !== undefined) table[name] = setting.value;
  }
  return raw;
}

/**
 * Loads the effective configuration from flags, environment, file and defaults, strongest first.
 * Throws KMB_ERR_CONFIG_INVALID listing every problem found, one per line.
 */
export function loadConfig(options: LoadConfigOptions): LoadedConfig {
  const problems: string[] = [];
  const flagLayer = readFlags(options.flags, problems);
  const envLayer = readEnv(options.env, problems);
  const fileLayer = readFileLayer(options, problems);
  if (problems.length > 0) throw configError(problems);

  const merged = mergeLayers([flagLayer, envLayer, fileLayer]);
  const result = configSchema.safeParse(assemble(merged));
  if (!result.success) {
    throw configError(result.error.issues.map((issue) => crossProblem(issue, merged)));
  }
  const sources = {} as Record<ConfigKey, ConfigSource>;
  const origins = {} as Record<ConfigKey, string>;
  for (const [key, setting] of merged) {
    sources[key] = setting.source;
    origins[key] = setting.origin;
  }
  return { config: result.data, sources, origins };
}

// ---------------------------------------------------------------------------------------------
// Rendering.

/**
 * The configuration as TOML that loads back to the same Config, each line followed by a comment
 * saying where its value came from (`origins` when given, else `sources`). An unset optional key
 * is shown as a comment, since TOML has no null.
 */
export function renderConfig(
  config: Config,
  sources: ConfigSources,
  origins?: Partial<Record<ConfigKey, string>>,
): string {
  const lines = [
    '# Effective configuration of kimberlite-server.',
    '# The comment after each value says where it came from: flag, env, file or default.',
  ];
  for (const section of configSections) {
    lines.push('', `[${section}]`);
    for (const name of sectionKeys.get(section) ?? []) {
      const key = `${section}.${name}` as ConfigKey;
      const value = valueAt(config, key);
      // A comment ends at a line break, so control characters in an origin are replaced.
      const note = (origins?.[key] ?? sources[key]).replace(/\p{Cc}/gu, '?');
      const line = value === undefined ? `# ${name} is not set` : `${name} = ${showValue(value)}`;
      lines.push(`${line}  # ${note}`);
    }
  }
  return `${lines.join('\n')}\n`;
}
