// Checks of the files in deploy/ that operators install as they are: the Prometheus scrape
// config and alert rules (with promtool, and their unit tests with `promtool test rules`), the
// Grafana dashboards (JSON, PromQL targets on documented metric names), the systemd unit
// (`systemd-analyze verify` where installed, plus a parse of its settings) and the example
// config.toml (every key of src/node/config.ts documented; loading it changes nothing).
//
// The promtool and systemd-analyze checks skip, with the reason printed, where the tool is not
// installed (.ci/run installs promtool); everything else always runs.

import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { configKeys, defaultConfig, loadConfig } from '../src/node/config.js';
import { repoRoot } from './harness.js';

const deploy = join(repoRoot, 'deploy');
const prometheusDir = join(deploy, 'prometheus');
/** The spec documents, beside the repository in the workspace; absent in a bare clone. */
const specDir = join(repoRoot, '..', 'shared', 'spec');

const filesIn = (dir: string, suffix: string): string[] =>
  readdirSync(dir)
    .filter((name) => name.endsWith(suffix))
    .sort()
    .map((name) => join(dir, name));

const ruleFiles = (): string[] => filesIn(join(prometheusDir, 'rules'), '.yml');
const ruleTestFiles = (): string[] => filesIn(join(prometheusDir, 'tests'), '.yml');

/** Runs a tool; null when it is not installed (then the test skips with the reason). */
function run(t: TestContext, tool: string, args: readonly string[]) {
  const result = spawnSync(tool, args, { encoding: 'utf8', cwd: repoRoot });
  if (result.error !== undefined) {
    t.skip(`${tool} not installed: ${result.error.message}`);
    return null;
  }
  return { code: result.status, output: `${result.stdout}${result.stderr}` };
}

test('promtool accepts the scrape config and the rule files', (t) => {
  // Proves the config and every rule file are what Prometheus loads: promtool checks syntax,
  // PromQL of every expr and the rule files the config names.
  const config = run(t, 'promtool', ['check', 'config', join(prometheusDir, 'prometheus.yml')]);
  if (config === null) return;
  assert.equal(config.code, 0, config.output);
  const rules = run(t, 'promtool', ['check', 'rules', ...ruleFiles()]);
  assert.equal(rules?.code, 0, rules?.output);
});

test('promtool test rules passes the alert unit tests', (t) => {
  // Proves every expectation in deploy/prometheus/tests: each alert fires with the expected
  // labels and annotations on bad input and stays silent on healthy input.
  const result = run(t, 'promtool', ['test', 'rules', ...ruleTestFiles()]);
  if (result === null) return;
  assert.equal(result.code, 0, result.output);
  assert.equal(result.output.match(/SUCCESS/g)?.length, ruleTestFiles().length, result.output);
});

/** Alert names and their rule text (from `- alert:` to the next rule), by file order. */
function alertBlocks(): Map<string, string> {
  const blocks = new Map<string, string>();
  for (const file of ruleFiles()) {
    const parts = readFileSync(file, 'utf8')
      .split(/^ {6}- alert: /m)
      .slice(1);
    for (const part of parts) {
      const name = part.slice(0, part.indexOf('\n')).trim();
      assert.ok(!blocks.has(name), `alert ${name} is defined once`);
      blocks.set(name, part);
    }
  }
  return blocks;
}

/** The spec's alerts (000, 001, 002, 003), by the names the rule files give them. */
const specAlerts = [
  ...['ClusterNoQuorum', 'HighErrorRate', 'ProjectionLagHigh', 'FrequentViewChanges'],
  ...['HighWriteLatency', 'ReplicaHasNoLeader', 'ProjectionLagGrowing', 'ChecksumFailuresDetected'],
  ...['VsrQuorumLost', 'VsrHighClientLatency', 'VsrViewChangeStorm', 'VsrLogCorruption'],
  ...['VsrMemoryLeak', 'VsrReplicaLag', 'VsrRepairStorm', 'VsrHighByzantineRejectionRate'],
  ...['KimberliteReplicaDown', 'KimberliteQuorumLost', 'KimberliteViewChangeStorm'],
  ...['KimberliteReplicationLagWarning', 'KimberliteReplicationLagHigh'],
  ...['KimberliteAssertionFailure', 'KimberliteDiskUsageWarning', 'KimberliteDiskUsageHigh'],
  ...['KimberliteDiskUsageCritical', 'KimberliteClockOffsetHigh', 'KimberliteCommitLatencyHigh'],
];

test('every alert has a severity, spec and runbook annotations, a firing and a silent test', () => {
  // Proves the rule files cover the spec's alert list, and that each alert is tied to the spec
  // (a `spec` annotation), to docs/alerts.md (a `runbook` anchor that exists there) and has a
  // unit test that expects it to fire and one that expects silence.
  const blocks = alertBlocks();
  for (const name of specAlerts) assert.ok(blocks.has(name), `a rule for the spec's ${name}`);
  const alertsDoc = readFileSync(join(repoRoot, 'docs', 'alerts.md'), 'utf8');
  const anchors = new Set([...alertsDoc.matchAll(/^#+ +(.+)$/gm)].map((m) => slug(m[1] ?? '')));
  const tests = ruleTestFiles()
    .map((file) => readFileSync(file, 'utf8'))
    .join('\n');
  for (const [name, block] of blocks) {
    assert.match(block, /^ +severity: (critical|warning|info)$/m, `${name}: severity label`);
    assert.match(block, /^ +summary: /m, `${name}: summary`);
    assert.match(block, /^ +spec: /m, `${name}: spec annotation`);
    const runbook = /^ +runbook: docs\/alerts\.md#([a-z0-9-]+)$/m.exec(block);
    assert.ok(runbook !== null, `${name}: runbook annotation`);
    assert.ok(anchors.has(runbook[1] ?? ''), `${name}: docs/alerts.md has #${runbook[1]}`);
    const cases = [...tests.matchAll(new RegExp(`alertname: ${name}\\n +exp_alerts:(.*)`, 'g'))];
    assert.ok(
      cases.some((m) => m[1] === ' []'),
      `${name}: a test where it stays silent`,
    );
    assert.ok(
      cases.some((m) => m[1] === ''),
      `${name}: a test where it fires`,
    );
  }
});

/** The `expr` of a rule block: one line, or the lines of a `>-` block scalar under it. */
function ruleExpr(block: string): string {
  const lines = block.split('\n');
  const at = lines.findIndex((line) => /^ +expr: /.test(line));
  const first = (lines[at] ?? '').replace(/^ +expr: /, '');
  if (first !== '>-') return first;
  const indent = (lines[at] ?? '').search(/\S/);
  const rest = lines.slice(at + 1);
  const end = rest.findIndex((line) => line.search(/\S/) <= indent);
  return rest.slice(0, end === -1 ? undefined : end).join(' ');
}

test('every alert rule reads documented metrics', () => {
  // Proves the rules are written against names /metrics serves: each metric in each expr is
  // documented in docs/metrics.md or the spec documents (the same check as the dashboards').
  const documented = documentedNames();
  const undocumented = new Set<string>();
  for (const [name, block] of alertBlocks()) {
    const names = metricNames(ruleExpr(block));
    assert.ok(names.length > 0, `${name}: reads a metric`);
    for (const metric of names) {
      if (!isDocumented(metric, documented)) undocumented.add(`${name}: ${metric}`);
    }
  }
  assert.deepEqual([...undocumented], [], 'metric names not in docs/metrics.md nor the spec');
});

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9 _-]/g, '')
    .replace(/ /g, '-');
}

const promqlKeywords = new Set(['and', 'or', 'unless', 'offset', 'bool', 'inf', 'nan', 'by']);

/** The metric names a PromQL expression reads (functions, labels, keywords left out). */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\$[A-Za-z_]+/g, ' ');
  const names: string[] = [];
  for (const match of bare.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const before = bare[(match.index ?? 0) - 1] ?? ' ';
    const after = bare.slice((match.index ?? 0) + match[0].length).trimStart();
    if (/[0-9.]/.test(before) || after.startsWith('(') || promqlKeywords.has(match[0])) continue;
    names.push(match[0]);
  }
  return names;
}

/** Metric names written in docs/metrics.md and (where present) the spec documents 000-003. */
function documentedNames(): Set<string> {
  const texts = [readFileSync(join(repoRoot, 'docs', 'metrics.md'), 'utf8')];
  if (existsSync(specDir)) {
    for (const file of filesIn(specDir, '.txt').filter((f) => /\/00[0-3]_/.test(f))) {
      texts.push(readFileSync(file, 'utf8'));
    }
  }
  const pattern = /\b(?:kmb|vsr|kimberlite|process|nodejs)_[a-z0-9_]+/g;
  const names = new Set(texts.flatMap((text) => text.match(pattern) ?? []));
  names.add('up'); // Prometheus' own per-target series.
  return names;
}

/** Whether `name` is documented, directly or as a histogram's or summary's series. */
function isDocumented(name: string, documented: ReadonlySet<string>): boolean {
  if (documented.has(name)) return true;
  const base = name.replace(/_(bucket|sum|count)$/, '');
  return base !== name && documented.has(base);
}

test('metricNames finds the metrics of a PromQL expression and nothing else', () => {
  // Proves the extractor the dashboard check relies on: functions, label matchers and values,
  // ranges, grouping labels, offsets, numbers and Grafana variables are not metric names.
  const expr =
    'histogram_quantile(0.99, sum by (le, node_id) (rate(a_bucket{job=~"$job",x="b_c"}' +
    '[$__rate_interval]))) > 1e3 * max_over_time(c[30m] offset 1h) and on (job) d_total == 1';
  assert.deepEqual(metricNames(expr), ['a_bucket', 'c', 'd_total']);
});

interface Panel {
  readonly type: string;
  readonly title: string;
  readonly targets?: ReadonlyArray<{ readonly expr?: string }>;
  readonly panels?: readonly Panel[];
}

test('every dashboard panel queries documented metrics', () => {
  // Proves each dashboard is valid JSON with a unique uid and a templated Prometheus data
  // source, that every panel (rows aside) has at least one PromQL target, and that every
  // metric name in every target is documented in docs/metrics.md or the spec documents.
  const documented = documentedNames();
  const files = filesIn(join(deploy, 'grafana'), '.json');
  assert.ok(files.length >= 2, 'an overview and a VSR detail dashboard');
  const uids = new Set<string>();
  const undocumented = new Set<string>();
  for (const file of files) {
    const dashboard = JSON.parse(readFileSync(file, 'utf8')) as { uid: string; panels: Panel[] };
    assert.ok(!uids.has(dashboard.uid), `${file}: unique uid`);
    uids.add(dashboard.uid);
    const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
    for (const panel of panels.filter((p) => p.type !== 'row')) {
      const exprs = (panel.targets ?? []).map((target) => target.expr ?? '');
      assert.ok(exprs.length > 0 && exprs.every((e) => e !== ''), `${panel.title}: PromQL`);
      for (const name of exprs.flatMap(metricNames)) {
        if (!isDocumented(name, documented)) undocumented.add(`${panel.title}: ${name}`);
      }
    }
  }
  assert.deepEqual([...undocumented], [], 'metric names not in docs/metrics.md nor the spec');
});

/** `Key=value` settings of each [Section] of a systemd unit file. */
function unitSections(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(\w+)\]$/.exec(line);
    if (header !== null) {
      current = new Map();
      sections.set(header[1] ?? '', current);
      continue;
    }
    const eq = line.indexOf('=');
    assert.ok(current !== undefined && eq > 0, `a Key=value line in a section: ${line}`);
    const key = line.slice(0, eq);
    current.set(key, [...(current.get(key) ?? []), line.slice(eq + 1)]);
  }
  return sections;
}

const unitPath = join(deploy, 'systemd', 'kimberlite.service');

test('the systemd unit runs the server as a dedicated user, hardened, logging to journald', () => {
  // Proves the settings docs/deploy.md relies on: the ExecStart command line, a non-root user,
  // restart on failure, a descriptor limit, JSON logs on stdout to the journal, and hardening.
  const sections = unitSections(readFileSync(unitPath, 'utf8'));
  assert.deepEqual([...sections.keys()], ['Unit', 'Service', 'Install']);
  const service = sections.get('Service') ?? new Map<string, string[]>();
  const one = (key: string): string | undefined => service.get(key)?.at(-1);
  assert.match(
    one('ExecStart') ?? '',
    /\/kimberlite-server --config \/etc\/kimberlite\/config\.toml$/,
  );
  assert.equal(one('User'), 'kimberlite');
  assert.equal(one('Restart'), 'on-failure');
  assert.ok(Number(one('LimitNOFILE')) >= 8192, 'LimitNOFILE covers max_connections');
  assert.equal(one('StandardOutput'), 'journal');
  assert.equal(one('SyslogIdentifier'), 'kimberlite');
  for (const key of ['NoNewPrivileges', 'ProtectHome', 'PrivateTmp', 'ProtectKernelTunables']) {
    assert.equal(one(key), 'yes', key);
  }
  assert.equal(one('ProtectSystem'), 'strict');
  assert.equal(one('ReadWritePaths'), '/var/lib/kimberlite');
  assert.equal(sections.get('Install')?.get('WantedBy')?.[0], 'multi-user.target');
});

test('systemd-analyze verify accepts the unit', async (t) => {
  // Proves systemd itself parses every setting (unknown keys and bad values are reported). The
  // copy's ExecStart points at the repository's bin/ so the executable check can pass here.
  const dir = await mkdtemp(join(tmpdir(), 'kmb-unit-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const unit = readFileSync(unitPath, 'utf8').replace(
    /^ExecStart=\S+/m,
    `ExecStart=${join(repoRoot, 'bin', 'kimberlite-server.js')}`,
  );
  writeFileSync(join(dir, 'kimberlite.service'), unit);
  const result = run(t, 'systemd-analyze', ['verify', join(dir, 'kimberlite.service')]);
  if (result === null) return;
  assert.equal(result.code, 0, result.output);
  assert.equal(result.output.trim(), '', 'no warnings');
});

test('config.example.toml documents every key and loads to the defaults', () => {
  // Proves the example stays complete as keys are added to src/node/config.ts: each key is
  // set (or shown commented out, for keys without a default) in its section, under a comment;
  // and loading the file gives exactly the built-in defaults, as its header promises.
  const path = join(deploy, 'config.example.toml');
  const lines = readFileSync(path, 'utf8').split('\n');
  let section = '';
  const found = new Map<string, number>();
  lines.forEach((line, index) => {
    const header = /^\[(\w+)\]$/.exec(line);
    if (header !== null) section = header[1] ?? '';
    const key = /^(?:# )?([a-z_]+) = /.exec(line);
    if (key !== null && section !== '') found.set(`${section}.${key[1] ?? ''}`, index);
  });
  for (const key of configKeys) {
    const index = found.get(key);
    assert.ok(index !== undefined, `${key} is in config.example.toml`);
    assert.match(lines[index - 1] ?? '', /^#/, `${key} has a comment above it`);
  }
  const loaded = loadConfig({ flags: {}, env: {}, configPath: path });
  assert.deepEqual(loaded.config, defaultConfig());
});
