// Printing a configuration for `kimberlite-server --show-config`: TOML that loads back to the
// same Config, each value followed by where it came from. Also how a single value is spelt in
// TOML, which configuration error messages use too (config_messages.ts).
//
// Invariants: the output parses as TOML and loads back (through config.ts) to the same Config;
// keys appear in the schema's order (config_schema.ts); a comment never spans a line break.

import type { Config, ConfigKey, ConfigSources } from './config_schema.js';
import { configSections, sectionKeys, valueAt } from './config_schema.js';

/** A value as TOML would spell it (error messages quote values this way too). */
export function showValue(value: unknown): string {
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
