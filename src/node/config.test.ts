// Tests of configuration loading: defaults, the precedence of flags > env > file > defaults,
// the messages of rejected values, unknown names, rendering for --show-config, and the example
// file and docs staying in step with the schema. Files are passed in through readFile, so no
// test touches the real file system or environment except where it reads the repo's own files.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { parse as parseToml } from 'smol-toml';
import { constants } from '../core/constants.js';
import { KmbError } from '../core/errors.js';
import {
  type Config,
  type ConfigKey,
  type ConfigSource,
  type LoadConfigOptions,
  type LoadedConfig,
  configEnvNames,
  configFlags,
  configKeys,
  defaultConfig,
  formatHostPort,
  loadConfig,
  parseHostPort,
  renderConfig,
} from './config.js';

const filePath = '/etc/kimberlite/config.toml';

interface Inputs {
  readonly flags?: LoadConfigOptions['flags'];
  readonly env?: LoadConfigOptions['env'];
  readonly file?: string;
}

function load(inputs: Inputs = {}): LoadedConfig {
  const { file } = inputs;
  return loadConfig({
    flags: inputs.flags ?? {},
    env: inputs.env ?? {},
    ...(file === undefined ? {} : { configPath: filePath, readFile: () => file }),
  });
}

/** The message of the KMB_ERR_CONFIG_INVALID that loading these inputs must raise. */
function problemOf(inputs: Inputs): string {
  try {
    load(inputs);
  } catch (error) {
    assert.ok(error instanceof KmbError, 'a KmbError');
    assert.equal(error.code, 'KMB_ERR_CONFIG_INVALID');
    return error.message;
  }
  assert.fail('the configuration was accepted');
}

function allSources(source: ConfigSource): Record<ConfigKey, ConfigSource> {
  return Object.fromEntries(configKeys.map((key) => [key, source])) as Record<
    ConfigKey,
    ConfigSource
  >;
}

/** A regular expression source matching `text` literally. */
function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function repoFile(path: string): string {
  return readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');
}

test('a node starts with nothing set, as a single-node cluster on the documented defaults', () => {
  // Proves DESIGN §6's promise: no file, no env, no flags still gives a valid configuration,
  // with the values the brief and the docs name, and every key reported as a default.
  const { config, sources } = load();
  assert.deepEqual(config, defaultConfig());
  assert.equal(config.server.address, '127.0.0.1:7001');
  assert.equal(config.server.metrics_address, '127.0.0.1:9090');
  assert.equal(config.server.max_connections, constants.connectionCountMax);
  assert.deepEqual(config.cluster, { name: 'default', node_id: 0, peers: ['127.0.0.1:7001'] });
  assert.equal(config.storage.data_dir, './data');
  assert.equal(config.consensus.pipeline_max, constants.pipelinePrepareCountMax);
  assert.equal(config.telemetry.tracing_endpoint, undefined);
  assert.ok(!('tracing_endpoint' in config.telemetry), 'unset optional keys are absent');
  assert.deepEqual(sources, allSources('default'));
});

test('each layer overrides the one below it: flag > env > file > default', () => {
  // Proves the precedence by setting one key in several layers at once and checking that the
  // strongest wins, while keys set only in weaker layers still come through.
  const file = '[storage]\ndata_dir = "/from/file"\nsegment_size_bytes = 2097152\n';
  const fileOnly = load({ file });
  assert.equal(fileOnly.config.storage.data_dir, '/from/file');
  assert.equal(fileOnly.sources['storage.data_dir'], 'file');

  const env = { KMB_STORAGE_DATA_DIR: '/from/env', KMB_CLUSTER_NAME: 'prod' };
  const withEnv = load({ file, env });
  assert.equal(withEnv.config.storage.data_dir, '/from/env');
  assert.equal(withEnv.sources['storage.data_dir'], 'env');
  assert.equal(withEnv.config.storage.segment_size_bytes, 2097152);
  assert.equal(withEnv.sources['storage.segment_size_bytes'], 'file');

  const withFlag = load({ file, env, flags: { 'data-dir': '/from/flag' } });
  assert.equal(withFlag.config.storage.data_dir, '/from/flag');
  assert.equal(withFlag.sources['storage.data_dir'], 'flag');
  assert.equal(withFlag.origins['storage.data_dir'], 'flag --data-dir');
  assert.equal(withFlag.config.cluster.name, 'prod');
  assert.equal(withFlag.origins['cluster.name'], 'env KMB_CLUSTER_NAME');
  assert.equal(withFlag.sources['server.address'], 'default');
});

test('every flag of DESIGN §6 sets its key', () => {
  // Proves the flag names and their parsing (numbers, comma lists with spaces) by setting all
  // six flags and reading the values back.
  const { config, sources } = load({
    flags: {
      'node-id': '2',
      'cluster-peers': '10.0.0.1:7001, 10.0.0.2:7001,[::1]:7001',
      address: '0.0.0.0:7001',
      'metrics-address': '0.0.0.0:9090',
      'data-dir': '/var/lib/kimberlite',
      'cluster-name': 'production',
    },
  });
  assert.equal(config.cluster.node_id, 2);
  assert.deepEqual(config.cluster.peers, ['10.0.0.1:7001', '10.0.0.2:7001', '[::1]:7001']);
  assert.equal(config.server.address, '0.0.0.0:7001');
  assert.equal(config.server.metrics_address, '0.0.0.0:9090');
  assert.equal(config.storage.data_dir, '/var/lib/kimberlite');
  assert.equal(config.cluster.name, 'production');
  for (const key of Object.values(configFlags)) assert.equal(sources[key], 'flag');
});

test('environment variables are KMB_<SECTION>_<KEY> and parse to the key type', () => {
  // Proves the env naming rule and the text conversions (integers, booleans, lists) on one
  // key of each type, and that an empty variable counts as unset.
  const { config, sources } = load({
    env: {
      KMB_CLUSTER_NODE_ID: '1',
      KMB_CLUSTER_PEERS: 'a:7001,b:7001,c:7001',
      KMB_TELEMETRY_METRICS_ENABLED: 'false',
      KMB_CONSENSUS_BATCHING_ENABLED: '0',
      KMB_TELEMETRY_STATSD_ADDRESS: 'localhost:8125',
      KMB_STORAGE_DATA_DIR: '',
    },
  });
  assert.equal(config.cluster.node_id, 1);
  assert.deepEqual(config.cluster.peers, ['a:7001', 'b:7001', 'c:7001']);
  assert.equal(config.telemetry.metrics_enabled, false);
  assert.equal(config.consensus.batching_enabled, false);
  assert.equal(config.telemetry.statsd_address, 'localhost:8125');
  assert.equal(sources['storage.data_dir'], 'default');
  assert.deepEqual(configEnvNames('cluster.node_id'), ['KMB_CLUSTER_NODE_ID']);
});

test('log settings honour KMB_LOG, RUST_LOG and RUST_LOG_FORMAT, below the KMB_ names', () => {
  // Proves DESIGN §6's aliases and their order: KMB_TELEMETRY_LOG_LEVEL > KMB_LOG > RUST_LOG.
  const rust = load({ env: { RUST_LOG: 'kimberlite=debug', RUST_LOG_FORMAT: 'text' } });
  assert.equal(rust.config.telemetry.log_level, 'kimberlite=debug');
  assert.equal(rust.config.telemetry.log_format, 'text');
  assert.equal(rust.origins['telemetry.log_level'], 'env RUST_LOG');

  const kmbLog = load({
    env: { RUST_LOG: 'debug', KMB_LOG: 'kimberlite=info,kimberlite_vsr=debug' },
  });
  assert.equal(kmbLog.config.telemetry.log_level, 'kimberlite=info,kimberlite_vsr=debug');

  const env = { RUST_LOG: 'debug', KMB_LOG: 'warn', KMB_TELEMETRY_LOG_LEVEL: 'trace' };
  assert.equal(load({ env }).config.telemetry.log_level, 'trace');
});

test('the config file comes from --config, else from KMB_CONFIG', () => {
  // Proves the file lookup: KMB_CONFIG names the file when --config is absent, and --config
  // wins when both are given.
  const files: Record<string, string> = {
    '/a.toml': '[cluster]\nname = "from-a"\n',
    '/b.toml': '[cluster]\nname = "from-b"\n',
  };
  const readFile = (path: string) => files[path] ?? assert.fail(`unexpected read of ${path}`);
  const env = { KMB_CONFIG: '/a.toml' };
  assert.equal(loadConfig({ flags: {}, env, readFile }).config.cluster.name, 'from-a');
  const both = loadConfig({ flags: {}, env, readFile, configPath: '/b.toml' });
  assert.equal(both.config.cluster.name, 'from-b');
  assert.equal(both.origins['cluster.name'], 'file /b.toml');
});

test('peers default to the address, and the address to this node entry of the peers', () => {
  // Proves the two derived defaults: a node with no peers is a cluster of one at its own
  // address; a node given peers but no address listens at peers[node_id].
  const alone = load({ flags: { address: '127.0.0.1:7101' } });
  assert.deepEqual(alone.config.cluster.peers, ['127.0.0.1:7101']);
  assert.equal(alone.sources['cluster.peers'], 'default');

  const peers = '127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003';
  const member = load({ flags: { 'node-id': '2', 'cluster-peers': peers } });
  assert.equal(member.config.server.address, '127.0.0.1:7003');
  assert.equal(member.sources['server.address'], 'default');

  const explicit = load({
    flags: { 'node-id': '2', 'cluster-peers': peers, address: '0.0.0.0:7003' },
  });
  assert.equal(explicit.config.server.address, '0.0.0.0:7003');
});

test('an invalid env value names the key, the variable, the fault and what is accepted', () => {
  // Proves the message shape of the brief with its own example, character for character.
  assert.equal(
    problemOf({ env: { KMB_CONSENSUS_HEARTBEAT_MS: '0' } }),
    'invalid configuration: [consensus] heartbeat_ms = 0 (from env KMB_CONSENSUS_HEARTBEAT_MS): ' +
      'must be an integer from 1 to 60000',
  );
  const text = problemOf({ env: { KMB_TELEMETRY_METRICS_ENABLED: 'maybe' } });
  assert.match(
    text,
    /\[telemetry\] metrics_enabled = "maybe" \(from env KMB_TELEMETRY_METRICS_ENABLED\)/,
  );
  assert.match(text, /must be true or false/);
});

test('an invalid flag value names the key and the flag', () => {
  // Proves flags are validated like every other source and that their messages name the flag.
  const text = problemOf({ flags: { 'node-id': 'two' } });
  assert.match(
    text,
    /\[cluster\] node_id = "two" \(from flag --node-id\): must be an integer from 0 to 5/,
  );
  const address = problemOf({ flags: { address: '::1:7001' } });
  assert.match(address, /\[server\] address = "::1:7001" \(from flag --address\)/);
  assert.match(address, /IPv6 address must be in brackets/);
  const peers = problemOf({ flags: { 'cluster-peers': 'a:1,b,c:1' } });
  assert.match(peers, /\[cluster\] peers = \["a:1", "b", "c:1"\] \(from flag --cluster-peers\)/);
  assert.match(peers, /entry 2 \("b"\): the ":port" is missing/);
});

test('an invalid file value names the key and the file path', () => {
  // Proves file values are type-checked (a quoted number is not a number) and bounded, and that
  // the message carries the path; all problems are reported at once, one per line.
  const file = '[cluster]\nnode_id = "1"\n[storage]\nsegment_size_bytes = 1024\n';
  const lines = problemOf({ file }).split('\n');
  assert.equal(lines.length, 2);
  assert.equal(
    lines[0],
    `invalid configuration: [cluster] node_id = "1" (from file ${filePath}): ` +
      'must be an integer from 0 to 5',
  );
  assert.match(
    lines[1] ?? '',
    /\[storage\] segment_size_bytes = 1024 \(from file .*\): must be an integer from 1048576 to/,
  );
});

test('a bad value in a weaker layer is reported even when a stronger layer overrides it', () => {
  // Proves that each layer is validated on its own, so a latent error in the file surfaces now.
  const text = problemOf({ file: '[storage]\ndata_dir = 7\n', flags: { 'data-dir': '/ok' } });
  assert.match(text, /\[storage\] data_dir = 7 \(from file/);
});

test('rules across keys name both keys, their values and where each came from', () => {
  // Proves the cross-key checks: node_id within peers, distinct peers, heartbeat below the
  // election timeout, tick within a heartbeat, distinct listeners, tracing needs an endpoint.
  assert.match(
    problemOf({ flags: { 'node-id': '3', 'cluster-peers': 'a:1,b:1' } }),
    new RegExp(
      escape('[cluster] node_id = 3 (from flag --node-id): ') +
        escape('must be less than the number of [cluster] peers (2); ') +
        escape('[cluster] peers = ["a:1", "b:1"] (from flag --cluster-peers)'),
    ),
  );
  assert.match(problemOf({ env: { KMB_CLUSTER_PEERS: 'a:1,A:1' } }), /entries 1 and 2 are both/);
  assert.match(
    problemOf({ env: { KMB_CONSENSUS_HEARTBEAT_MS: '1000' } }),
    new RegExp(
      escape('heartbeat_ms = 1000 (from env KMB_CONSENSUS_HEARTBEAT_MS): ') +
        escape('must be less than [consensus] election_timeout_ms; ') +
        escape('[consensus] election_timeout_ms = 1000 (default)'),
    ),
  );
  assert.match(problemOf({ file: '[consensus]\ntick_ms = 200\n' }), /\[consensus\] tick_ms = 200/);
  assert.match(
    problemOf({ flags: { 'metrics-address': '127.0.0.1:7001' } }),
    /\[server\] metrics_address = "127.0.0.1:7001" \(from flag --metrics-address\): must differ/,
  );
  assert.match(
    problemOf({ flags: { address: '[::]:7001', 'metrics-address': '10.0.0.1:7001' } }),
    /must differ from \[server\] address/,
  );
  const ephemeral = { address: '127.0.0.1:0', 'metrics-address': '127.0.0.1:0' };
  assert.equal(load({ flags: ephemeral }).config.server.metrics_address, '127.0.0.1:0');
  assert.match(
    problemOf({ env: { KMB_TELEMETRY_TRACING_ENABLED: 'true' } }),
    /tracing_enabled = true .*tracing_endpoint is not set/,
  );
});

test('the ops port keys parse, are bounded, and headers may not outlast the request', () => {
  // Proves the [telemetry] keys of the ops HTTP port: documented defaults (loopback, 64, 10 s,
  // 10 s, 30 s), values from the environment, a mode or cap outside its set refused with what
  // is accepted, and ops_headers_timeout_ms above ops_request_timeout_ms refused naming both.
  const defaults = load({}).config.telemetry;
  assert.equal(defaults.debug_endpoints, 'loopback');
  assert.equal(defaults.ops_max_connections, 64);
  assert.equal(defaults.ops_headers_timeout_ms, 10_000);
  assert.equal(defaults.ops_request_timeout_ms, 10_000);
  assert.equal(defaults.ops_keep_alive_timeout_ms, 30_000);
  const set = load({
    env: { KMB_TELEMETRY_DEBUG_ENDPOINTS: 'any', KMB_TELEMETRY_OPS_MAX_CONNECTIONS: '8' },
  }).config.telemetry;
  assert.equal(set.debug_endpoints, 'any');
  assert.equal(set.ops_max_connections, 8);
  assert.match(
    problemOf({ env: { KMB_TELEMETRY_DEBUG_ENDPOINTS: 'public' } }),
    /debug_endpoints = "public" .*must be "loopback", "any" or "off"/,
  );
  assert.match(
    problemOf({ file: '[telemetry]\nops_max_connections = 0\n' }),
    /ops_max_connections = 0 .*must be an integer from 1 to 1024/,
  );
  assert.match(
    problemOf({ env: { KMB_TELEMETRY_OPS_KEEP_ALIVE_TIMEOUT_MS: '0' } }),
    /ops_keep_alive_timeout_ms = 0 .*from 1000 to 300000/,
  );
  assert.match(
    problemOf({ file: '[telemetry]\nops_headers_timeout_ms = 20000\n' }),
    new RegExp(
      escape('[telemetry] ops_headers_timeout_ms = 20000 (from file ') +
        '.*' +
        escape('must not exceed [telemetry] ops_request_timeout_ms') +
        '.*' +
        escape('[telemetry] ops_request_timeout_ms = 10000 (default)'),
    ),
  );
});

test('unknown keys and sections are errors that suggest the intended name', () => {
  // Proves strictness with help: a misspelt key, a key in the wrong section, a misspelt
  // section, a key outside any section, and a misspelt environment variable or flag.
  const file = '[storage]\ndatadir = "x"\n[server]\nheartbeat_ms = 5\n[storge]\n';
  const text = problemOf({ file });
  assert.match(
    text,
    /unknown key \[storage\] datadir in \/etc\/kimberlite\/config.toml \(did you mean data_dir\?\)/,
  );
  assert.match(
    text,
    /unknown key \[server\] heartbeat_ms in .* \(did you mean \[consensus\] heartbeat_ms\?\)/,
  );
  assert.match(text, /unknown section \[storge\] in .* \(did you mean \[storage\]\?\)/);
  assert.match(
    problemOf({ file: 'data_dir = "x"\n' }),
    /outside any section \(did you mean \[storage\] data_dir\?\)/,
  );
  assert.match(
    problemOf({ env: { KMB_STORAGE_DATADIR: '/x' } }),
    /unknown environment variable KMB_STORAGE_DATADIR \(did you mean KMB_STORAGE_DATA_DIR\?\)/,
  );
  const flags = { 'data-directory': '/x' } as LoadConfigOptions['flags'];
  assert.match(problemOf({ flags }), /unknown flag --data-directory/);
  assert.equal(
    load({ env: { KMB_CLUSTER: 'a:1,b:1', KMB_OTHER_THING: '1' } }).sources['cluster.peers'],
    'default',
  );
});

test('the troubleshooting guide spelling [server] cluster_name sets [cluster] name', () => {
  // Proves the spec's example file loads, and that setting both spellings is refused.
  const { config, origins } = load({ file: '[server]\ncluster_name = "production"\n' });
  assert.equal(config.cluster.name, 'production');
  assert.match(origins['cluster.name'], /as \[server\] cluster_name/);
  const both = '[server]\ncluster_name = "a"\n[cluster]\nname = "b"\n';
  assert.match(problemOf({ file: both }), /sets both \[server\] cluster_name and \[cluster\] name/);
});

test('unreadable and unparsable files give the path, the reason and the position', () => {
  // Proves the two file failures outside the schema: a read error (with the variable that named
  // the file) and a TOML syntax error (with line, column and an excerpt).
  const unreadable = () =>
    loadConfig({
      flags: {},
      env: { KMB_CONFIG: '/nope.toml' },
      readFile: () => {
        throw new Error('ENOENT: no such file or directory');
      },
    });
  assert.throws(unreadable, (error: unknown) => {
    assert.ok(error instanceof KmbError);
    assert.equal(error.code, 'KMB_ERR_CONFIG_INVALID');
    const expected =
      /cannot read the configuration file \/nope.toml \(from env KMB_CONFIG\): ENOENT/;
    assert.match(error.message, expected);
    return true;
  });
  const syntax = problemOf({ file: '[server]\naddress = \n' });
  assert.match(syntax, /cannot parse \/etc\/kimberlite\/config.toml as TOML at line 2, column 11/);
  assert.match(syntax, /address = /);
});

test('parseHostPort accepts host names, IPv4 and bracketed IPv6, with ports 0 to 65535', () => {
  // Proves the address grammar on its edges, and that formatHostPort inverts it.
  assert.deepEqual(parseHostPort('node1:7001'), { host: 'node1', port: 7001 });
  assert.deepEqual(parseHostPort('10.0.0.1:0'), { host: '10.0.0.1', port: 0 });
  assert.deepEqual(parseHostPort('[::1]:65535'), { host: '::1', port: 65535 });
  assert.equal(formatHostPort(parseHostPort('[2001:db8::1]:7001')), '[2001:db8::1]:7001');
  for (const bad of [
    'node1',
    'node1:',
    ':7001',
    'a:65536',
    '::1:7001',
    '[::1]7001',
    '1.2.3.999:1',
    'a b:1',
  ]) {
    assert.throws(
      () => parseHostPort(bad),
      (error: unknown) => {
        assert.ok(error instanceof KmbError);
        assert.equal(error.code, 'KMB_ERR_INVALID_ARGUMENT');
        assert.match(
          error.message,
          new RegExp(`invalid address "${bad.replace(/[[\]]/g, '\\$&')}"`),
        );
        return true;
      },
    );
  }
});

test('log levels accept a level or module=level directives and nothing else', () => {
  // Proves the log_level grammar: the spec's examples pass, a made-up level or a bare module
  // name (which RUST_LOG would read as "everything") is refused.
  for (const good of [
    'info',
    'DEBUG',
    'kimberlite=info,kimberlite_vsr=debug',
    'kimberlite_vsr::replica=trace,warn',
  ]) {
    assert.equal(load({ env: { KMB_LOG: good } }).config.telemetry.log_level, good);
  }
  for (const bad of ['verbose', 'kimberlite=loud', 'kimberlite', 'a=info,,b=debug']) {
    assert.match(
      problemOf({ env: { KMB_LOG: bad } }),
      /\[telemetry\] log_level .*\(from env KMB_LOG\)/,
    );
  }
});

test('renderConfig prints TOML that parses back to the same configuration, noting sources', () => {
  // Proves --show-config output is valid TOML equal to the effective config (unset optional
  // keys appear only as comments) and that each value line ends with where it came from.
  const loaded = load({
    file: '[telemetry]\nstatsd_address = "[::1]:8125"\n',
    env: { KMB_STORAGE_DATA_DIR: 'C:\\data "quoted"\n' },
    flags: { 'node-id': '0' },
  });
  const text = renderConfig(loaded.config, loaded.sources, loaded.origins);
  assert.deepEqual(
    JSON.parse(JSON.stringify(parseToml(text))),
    JSON.parse(JSON.stringify(loaded.config)),
  );
  const lines = text.split('\n');
  assert.ok(lines.includes(`statsd_address = "[::1]:8125"  # file ${filePath}`));
  assert.ok(lines.includes('node_id = 0  # flag --node-id'));
  assert.ok(lines.includes('# tracing_endpoint is not set  # default'));
  assert.ok(
    lines.some(
      (line) => line.startsWith('data_dir = ') && line.endsWith('# env KMB_STORAGE_DATA_DIR'),
    ),
  );
  const bare = renderConfig(loaded.config, loaded.sources);
  assert.ok(bare.split('\n').includes('node_id = 0  # flag'));
});

const hostArb = fc.oneof(
  fc.ipV4(),
  fc.domain(),
  fc.ipV6().map((ip) => `[${ip}]`),
);
const hostPortArb = fc
  .tuple(hostArb, fc.integer({ min: 0, max: 65535 }))
  .map(([host, port]) => `${host}:${port}`);
const noControl = (text: string) => !/\p{Cc}/u.test(text);

/** `{ [key]: value }`, or `{}` when the value is undefined (optional keys are left out). */
function optional<K extends string>(key: K, value: string | undefined): { [P in K]?: string } {
  return value === undefined ? {} : ({ [key]: value } as { [P in K]?: string });
}

const configArb: fc.Arbitrary<Config> = fc
  .record({
    listeners: fc
      .tuple(hostPortArb, hostPortArb)
      .filter(([a, b]) => parseHostPort(a).port !== parseHostPort(b).port),
    peers: fc.uniqueArray(hostPortArb, {
      minLength: 1,
      maxLength: constants.replicaCountMax,
      selector: (p) => p.toLowerCase(),
    }),
    nodeSeed: fc.nat(),
    name: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,20}$/),
    dataDir: fc
      .string({ unit: 'grapheme', minLength: 1, maxLength: 30 })
      .filter((s) => !s.includes('\0')),
    heartbeat: fc.integer({ min: 1, max: 60_000 }),
    seeds: fc.tuple(fc.nat(), fc.nat()),
    ints: fc.tuple(
      fc.integer({ min: 1, max: constants.connectionCountMax }),
      fc.integer({ min: 0, max: 300_000 }),
      fc.integer({ min: 1024 * 1024, max: constants.journalSegmentSizeBytesMax }),
      fc.integer({ min: 1, max: constants.pipelinePrepareCountMax }),
      fc.integer({ min: 1, max: constants.prepareRequestCountMax }),
      fc.integer({ min: 1, max: constants.clientSessionCountMax }),
      fc.integer({ min: 1, max: 3600 }),
    ),
    flags: fc.tuple(fc.boolean(), fc.boolean(), fc.boolean()),
    clientPort: fc.tuple(
      fc.integer({ min: 100, max: 86_400_000 }),
      fc.integer({ min: 100, max: 3_600_000 }),
      fc.integer({ min: constants.frameSizeBytesMax, max: 2 ** 36 }),
      fc.integer({ min: 1, max: constants.clientSessionCountMax }),
      fc.integer({ min: 1, max: 1_000_000 }),
      fc.integer({ min: 1, max: constants.clientSessionCountMax }),
    ),
    logLevel: fc.oneof(
      fc.constantFrom('off', 'error', 'warn', 'info', 'debug', 'trace'),
      fc
        .array(
          fc.tuple(fc.stringMatching(/^[a-z_][a-z0-9_:]{0,15}$/), fc.constantFrom('info', 'DEBUG')),
          { minLength: 1, maxLength: 4 },
        )
        .map((parts) => parts.map(([target, level]) => `${target}=${level}`).join(',')),
    ),
    logFormat: fc.constantFrom('json' as const, 'text' as const),
    tracingEndpoint: fc.option(fc.webUrl(), { nil: undefined }),
    sampleRatio: fc.integer({ min: 0, max: 1000 }).map((permille) => permille / 1000),
    otlpEndpoint: fc.option(fc.webUrl(), { nil: undefined }),
    statsd: fc.option(hostPortArb, { nil: undefined }),
    prefix: fc.stringMatching(/^[A-Za-z0-9._-]{0,64}$/),
    service: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }).filter(noControl),
    debugEndpoints: fc.constantFrom('loopback' as const, 'any' as const, 'off' as const),
    opsConnections: fc.integer({ min: 1, max: constants.opsConnectionCountMax }),
    diskFree: fc.integer({ min: 0, max: constants.diskFreeBytesMinMax }),
    opsTimeouts: fc.array(
      fc.integer({ min: constants.opsTimeoutMsMin, max: constants.opsTimeoutMsMax }),
      { minLength: 3, maxLength: 3 },
    ),
  })
  .map((r) => {
    const [maxConnections, shutdown, segment, pipeline, batch, sessions, interval] = r.ints;
    const [metricsEnabled, batching, tracingWanted] = r.flags;
    const [timeoutA = 0, timeoutB = 0, keepAlive = 0] = r.opsTimeouts;
    return {
      server: {
        address: r.listeners[0],
        metrics_address: r.listeners[1],
        max_connections: maxConnections,
        shutdown_timeout_ms: shutdown,
        idle_timeout_ms: r.clientPort[0],
        frame_timeout_ms: r.clientPort[1],
        frame_buffer_budget_bytes: r.clientPort[2],
        sessions_per_connection_max: r.clientPort[3],
        session_registrations_per_second: r.clientPort[4],
        session_registration_burst: r.clientPort[5],
      },
      cluster: { name: r.name, node_id: r.nodeSeed % r.peers.length, peers: r.peers },
      storage: {
        data_dir: r.dataDir,
        segment_size_bytes: segment,
        disk_free_bytes_min: r.diskFree,
      },
      consensus: {
        tick_ms: 1 + (r.seeds[0] % Math.min(1000, r.heartbeat)),
        heartbeat_ms: r.heartbeat,
        election_timeout_ms: r.heartbeat + 1 + (r.seeds[1] % (300_000 - r.heartbeat)),
        pipeline_max: pipeline,
        batch_max_requests: batch,
        batching_enabled: batching,
        client_sessions_max: sessions,
      },
      telemetry: {
        log_level: r.logLevel,
        log_format: r.logFormat,
        metrics_enabled: metricsEnabled,
        tracing_enabled: tracingWanted && r.tracingEndpoint !== undefined,
        ...optional('tracing_endpoint', r.tracingEndpoint),
        tracing_sample_ratio: r.sampleRatio,
        ...optional('otlp_endpoint', r.otlpEndpoint),
        export_interval_secs: interval,
        ...optional('statsd_address', r.statsd),
        statsd_prefix: r.prefix,
        service_name: r.service,
        debug_endpoints: r.debugEndpoints,
        ops_max_connections: r.opsConnections,
        ops_headers_timeout_ms: Math.min(timeoutA, timeoutB),
        ops_request_timeout_ms: Math.max(timeoutA, timeoutB),
        ops_keep_alive_timeout_ms: keepAlive,
      },
    };
  });

test('property: any valid configuration, rendered and reloaded as a file, is unchanged', () => {
  // Proves renderConfig and loadConfig are inverse over the whole valid space, generated by
  // fast-check: hosts of every kind, awkward Unicode paths, optional keys set or not.
  fc.assert(
    fc.property(configArb, (config) => {
      const text = renderConfig(config, allSources('file'));
      const reloaded = load({ file: text });
      assert.deepEqual(reloaded.config, config);
      for (const key of configKeys) {
        const expected = valueOf(config, key) === undefined ? 'default' : 'file';
        assert.equal(reloaded.sources[key], expected, key);
      }
    }),
    { numRuns: 300 },
  );
});

test('deploy/config.example.toml is valid, holds every default and mentions every key', () => {
  // Proves the example shipped to operators cannot drift from the schema or the defaults.
  const text = repoFile('deploy/config.example.toml');
  const { config, sources } = load({ file: text });
  assert.deepEqual(config, defaultConfig());
  for (const key of configKeys) {
    const name = key.split('.')[1] ?? '';
    assert.match(text, new RegExp(`^#? ?${name} = `, 'm'), `${key} appears in the example`);
    if (valueOf(defaultConfig(), key) !== undefined) assert.equal(sources[key], 'file', key);
  }
});

function valueOf(config: Config, key: ConfigKey): unknown {
  const [section, name] = key.split('.') as [keyof Config, string];
  return (config[section] as unknown as Record<string, unknown>)[name];
}

test('docs/configuration.md documents every key, its environment variable and every flag', () => {
  // Proves the operator docs list each key under its section with its variable, and each flag.
  const text = repoFile('docs/configuration.md');
  for (const key of configKeys) {
    assert.ok(text.includes(`\`${key.split('.')[1]}\``), `${key} is documented`);
    for (const name of configEnvNames(key)) assert.ok(text.includes(name), `${name} is documented`);
  }
  for (const flag of Object.keys(configFlags)) assert.ok(text.includes(`--${flag}`), `--${flag}`);
});

test('[storage] disk_free_bytes_min: defaults to 256 MiB, 0 is allowed, negatives are refused', () => {
  // Proves the disk-full floor is a validated key: its default is the named constant, the
  // environment sets it (0 turns the floor off, leaving ENOSPC alone), and a negative value is
  // refused naming the key and the accepted range.
  assert.equal(load({}).config.storage.disk_free_bytes_min, constants.diskFreeBytesMinDefault);
  const env = { KMB_STORAGE_DISK_FREE_BYTES_MIN: '0' };
  assert.equal(load({ env }).config.storage.disk_free_bytes_min, 0);
  assert.match(
    problemOf({ file: '[storage]\ndisk_free_bytes_min = -1\n' }),
    /\[storage\] disk_free_bytes_min = -1 \(from file .*\): must be an integer from 0 to/,
  );
});

test('[server] client port limits load from the environment and are validated', () => {
  // Proves the client port's keys (idle and frame timeouts, frame buffer budget, session
  // limits) are read from KMB_SERVER_*, and that a budget smaller than one frame is refused
  // naming the key and the accepted range.
  const loaded = loadConfig({
    flags: {},
    env: {
      KMB_SERVER_IDLE_TIMEOUT_MS: '1500',
      KMB_SERVER_FRAME_TIMEOUT_MS: '700',
      KMB_SERVER_SESSIONS_PER_CONNECTION_MAX: '6',
    },
  });
  assert.equal(loaded.config.server.idle_timeout_ms, 1500);
  assert.equal(loaded.config.server.frame_timeout_ms, 700);
  assert.equal(loaded.config.server.sessions_per_connection_max, 6);
  assert.equal(loaded.sources['server.idle_timeout_ms'], 'env');
  assert.equal(loaded.config.server.frame_buffer_budget_bytes, 256 * 1024 * 1024);
  assert.match(
    problemOf({ env: { KMB_SERVER_FRAME_BUFFER_BUDGET_BYTES: '1024' } }),
    /\[server\] frame_buffer_budget_bytes = 1024 \(from env .*\): must be an integer from 8388608/,
  );
});
