// The words of configuration errors: a rejected value as `[section] key = value (from where):
// what is wrong; what is accepted`, "did you mean" for misspelt sections, keys and variables,
// and the one KMB_ERR_CONFIG_INVALID that lists every problem found.
//
// Invariants: every message names the key as `[section] key` and where its value came from; any
// key, value or line from outside is quoted clipped (config_limits.ts), and a suggestion is
// computed only for names of bounded length, so a huge input costs a bounded amount here.

import type { z } from 'zod';
import { kmbError, type KmbError } from '../core/errors.js';
import { clipForMessage, suggestionNameLengthMax } from './config_limits.js';
import { showValue } from './config_render.js';
import type { ConfigKey, ConfigSection } from './config_schema.js';
import { configSections, isTable, sectionKeys, splitKey } from './config_schema.js';

export function fromWhere(origin: string): string {
  return origin.startsWith('default') ? origin : `from ${origin}`;
}

export function showKey(key: ConfigKey): string {
  const [section, name] = splitKey(key);
  return `[${section}] ${name}`;
}

export type Issue = z.core.$ZodIssue;

/** `[section] key = value (from origin): what is wrong; what is accepted`. */
export function valueProblem(key: ConfigKey, value: unknown, origin: string, issue: Issue): string {
  const at = issue.path[0];
  const entry =
    typeof at === 'number' && Array.isArray(value)
      ? `entry ${at + 1} (${clipForMessage(showValue(value[at]))}): `
      : '';
  const head = `${showKey(key)} = ${clipForMessage(showValue(value))} (${fromWhere(origin)})`;
  return `${head}: ${entry}${issue.message}`;
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
export function closest(word: string, candidates: readonly string[]): string | undefined {
  if (word.length > suggestionNameLengthMax) return undefined;
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

export function unknownKeyProblem(section: ConfigSection, name: string, file: string): string {
  const keys = sectionKeys.get(section) ?? [];
  const elsewhere = sectionsWithKey(name)[0];
  const near = closest(name, keys);
  const hint =
    elsewhere !== undefined
      ? `did you mean [${elsewhere}] ${name}?`
      : near !== undefined
        ? `did you mean ${near}?`
        : `the keys of [${section}] are ${keys.join(', ')}`;
  return `unknown key [${section}] ${clipForMessage(name)} in ${file} (${hint})`;
}

export function unknownTopLevelProblem(name: string, value: unknown, file: string): string {
  const sections = configSections.map((section) => `[${section}]`).join(', ');
  if (isTable(value)) {
    const near = closest(name, configSections);
    const hint = near === undefined ? `the sections are ${sections}` : `did you mean [${near}]?`;
    return `unknown section [${clipForMessage(name)}] in ${file} (${hint})`;
  }
  const home = sectionsWithKey(name)[0];
  const hint =
    home === undefined ? `the sections are ${sections}` : `did you mean [${home}] ${name}?`;
  const shown = clipForMessage(name);
  return `unknown key ${shown} at the top of ${file}, outside any section (${hint})`;
}

export function configError(problems: readonly string[]): KmbError {
  return kmbError('config_invalid', problems.map((p) => `invalid configuration: ${p}`).join('\n'));
}

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
