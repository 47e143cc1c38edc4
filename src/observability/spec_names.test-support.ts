// Test support: every metric name the spec documents 000–003 mention, read from the documents
// themselves (so a name missing from our expositions fails a test, instead of a list we keep by
// hand drifting from the spec), and where each must be served: /metrics, or /metrics/compat for
// the names promtool rejects (compat_metrics.ts compatNames, the naming decision).
//
// The documents are outside the repository (/work/shared/spec, or KMB_SPEC_DIR). A clean clone
// (CI) does not have them, so the list they yield is also kept in spec_metric_names.txt beside
// this file: where the documents are present a test checks that the file equals what they
// yield; where they are absent the file stands in for them.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { compatNames } from './compat_metrics.js';

/** Words the documents spell like metric names but that are not metrics, and why. */
export const notMetricNames: Readonly<Record<string, string>> = {
  kmb_consensus: 'a log target in the sample JSON log line',
  kimberlite_vsr: 'a RUST_LOG module name',
  kimberlite_storage: 'a RUST_LOG module name',
  vsr_reconfig_state0: 'vsr_reconfig_state followed by its "0=Stable" legend in the table',
  vsr_client_latency_ms_p99: "an alert's shorthand for the p99 of vsr_client_latency_ms",
};

export interface SpecName {
  /** The name as the spec writes it (histogram suffixes removed). */
  readonly name: string;
  /** Where it must appear as a `# TYPE` line. */
  readonly endpoint: '/metrics' | '/metrics/compat';
}

export function specDir(): string {
  return process.env['KMB_SPEC_DIR'] ?? '/work/shared/spec';
}

/** The names as kept in the repository (spec_metric_names.txt), one per line. */
export function keptSpecNames(): string[] {
  const text = readFileSync(new URL('./spec_metric_names.txt', import.meta.url), 'utf8');
  return text.split('\n').filter((line) => line !== '' && !line.startsWith('#'));
}

/**
 * The metric names of spec documents 000–003, where to serve each: from the documents when
 * they are here, else from the kept list.
 */
export function specMetricNames(): SpecName[] {
  const fromDocuments = specDocumentNames();
  const names = fromDocuments ?? keptSpecNames();
  const originals = new Set(Object.values(compatNames));
  return names.map((name) => ({
    name,
    endpoint: originals.has(name) ? '/metrics/compat' : '/metrics',
  }));
}

/** The metric names the spec documents 000–003 mention, sorted; null when they are not here. */
export function specDocumentNames(): string[] | null {
  const dir = specDir();
  if (!existsSync(dir)) return null;
  const files = readdirSync(dir).filter((file) => /^00[0-3]_.*\.txt$/.test(file));
  if (files.length !== 4) return null;
  const found = new Set<string>();
  for (const file of files) {
    const text = readFileSync(join(dir, file), 'utf8');
    for (const match of text.matchAll(/\b(?:kmb|vsr|kimberlite)_[a-z0-9_]+/g)) {
      found.add(match[0]);
    }
  }
  const names = new Set<string>();
  for (const name of found) {
    if (notMetricNames[name] !== undefined) continue;
    const base = name.replace(/_(bucket|sum|count)$/, '');
    names.add(base !== name && found.has(base) ? base : name);
  }
  return [...names].sort();
}

/** The metric families an exposition declares (`# TYPE name type`). */
export function declaredTypes(text: string): Map<string, string> {
  const result = new Map<string, string>();
  for (const match of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    result.set(match[1] ?? '', match[2] ?? '');
  }
  return result;
}

/** Spec names missing from the two expositions ("name (endpoint)"). */
export function missingSpecNames(names: readonly SpecName[], metrics: string, compat: string) {
  const served = { '/metrics': declaredTypes(metrics), '/metrics/compat': declaredTypes(compat) };
  return names
    .filter(({ name, endpoint }) => !served[endpoint].has(name))
    .map(({ name, endpoint }) => `${name} (${endpoint})`);
}
