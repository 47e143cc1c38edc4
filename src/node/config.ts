// Configuration of one kimberlite-server process (DESIGN.md §6): loading the effective settings
// and where each one came from. The schema of each key, the checks across keys and the defaults
// are config_schema.ts; error messages config_messages.ts; host:port config_address.ts;
// printing for `kimberlite-server --show-config` config_render.ts. Everything callers use is
// exported from here.
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

import { parse as parseToml, TomlError } from 'smol-toml';
import {
  checkConfigText,
  clipForMessage,
  excerptLineCharCountMax,
  readConfigFile,
} from './config_limits.js';
import {
  closest,
  configError,
  errorText,
  fromWhere,
  showKey,
  unknownKeyProblem,
  unknownTopLevelProblem,
  valueProblem,
  type Issue,
} from './config_messages.js';
import { showValue } from './config_render.js';
import {
  configKeys,
  configSchema,
  configSections,
  defaultConfig,
  fieldSchema,
  fileSchema,
  isTable,
  optionalKeys,
  splitKey,
  valueAt,
  type Config,
  type ConfigKey,
  type ConfigSection,
  type ConfigSource,
  type ConfigSources,
} from './config_schema.js';

export { formatHostPort, parseHostPort, type HostPort } from './config_address.js';
export { renderConfig } from './config_render.js';
export {
  configKeys,
  configSections,
  defaultConfig,
  type ClusterConfig,
  type Config,
  type ConfigKey,
  type ConfigSection,
  type ConfigSource,
  type ConfigSources,
  type ConsensusConfig,
  type DebugEndpointsSetting,
  type LogFormat,
  type ServerConfig,
  type StorageConfig,
  type TelemetryConfig,
} from './config_schema.js';

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

// ---------------------------------------------------------------------------------------------
// Layers. Each layer is validated on its own, so that a bad value is reported even when a
// stronger layer overrides it: the operator should learn about it before it starts to matter.

interface Setting {
  readonly value: unknown;
  readonly source: ConfigSource;
  readonly origin: string;
}

type Layer = Map<ConfigKey, Setting>;

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
    problems.push(`unknown environment variable ${clipForMessage(name)} (${hint})`);
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
      const value = clipForMessage(showValue(isTable(table) ? table[String(section)] : undefined));
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
  const excerpt = error.codeblock
    .trimEnd()
    .split('\n')
    .map((line) => `    ${clipForMessage(line, excerptLineCharCountMax)}`)
    .join('\n');
  const position = `line ${error.line}, column ${error.column}`;
  return `cannot parse ${file} as TOML at ${position}: ${clipForMessage(reason)}\n${excerpt}`;
}

function readFileLayer(options: LoadConfigOptions, problems: string[]): Layer {
  const layer: Layer = new Map();
  const viaEnv = options.configPath === undefined;
  const file = options.configPath ?? (options.env['KMB_CONFIG'] || undefined);
  if (file === undefined) return layer;
  let parsed: Record<string, unknown>;
  try {
    parsed = parseToml(checkConfigText((options.readFile ?? readConfigFile)(file)));
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
