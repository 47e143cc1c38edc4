// Log levels and the per-module level directives operators write in KMB_LOG (or RUST_LOG):
// `kimberlite=info,kimberlite_vsr=debug`, or a bare level such as `debug` for the default.
//
// Syntax: a comma-separated list; each item is either a level or `module=level`. Levels are
// error, warn, info, debug, trace and off, in any letter case. A module is a word of letters,
// digits and underscores, optionally followed by `::segment`s. Empty items are ignored (so a
// trailing comma is fine); a later item for the same module replaces an earlier one. Anything
// else, including env_logger's bare module names and `/regex` filters, is rejected with
// KMB_ERR_CONFIG_INVALID, because a typo must not silently turn logging up or off.
//
// Matching: a directive for module `m` covers `m` itself and every module under it, where
// "under" means the name continues with `_` or `::` (`kimberlite` covers `kimberlite_vsr`,
// which covers `kimberlite_vsr::view_change`). The most specific (longest) covering directive
// wins; with none, the bare level applies; with no bare level, the caller's fallback does.

import { kmbError } from '../core/errors.js';

export const logLevels = ['error', 'warn', 'info', 'debug', 'trace'] as const;
export type LogLevel = (typeof logLevels)[number];
/** A level a module may be set to: a log level, or off for nothing at all. */
export type LogFilterLevel = LogLevel | 'off';

/** Severity rank: a line is written when its level's rank is <= the module's threshold. */
export const logLevelRank: Readonly<Record<LogFilterLevel, number>> = {
  off: 0,
  error: 1,
  warn: 2,
  info: 3,
  debug: 4,
  trace: 5,
};

export interface ModuleDirective {
  readonly module: string;
  readonly level: LogFilterLevel;
}

export interface LogDirectives {
  /** The level set by a bare item, if any. */
  readonly defaultLevel?: LogFilterLevel;
  /** Per-module levels, one per module, in first-seen order. */
  readonly modules: readonly ModuleDirective[];
}

export const logDirectivesLimits = {
  /** Characters in one directive string. */
  textLengthMax: 4096,
  /** Items in one directive string. */
  itemCountMax: 128,
} as const;

const modulePattern = /^[A-Za-z_][A-Za-z0-9_]*(::[A-Za-z0-9_]+)*$/;

export function isLogFilterLevel(value: string): value is LogFilterLevel {
  return Object.prototype.hasOwnProperty.call(logLevelRank, value);
}

/**
 * Parses a directive string such as `kimberlite=info,kimberlite_vsr=debug`. `source` names
 * where the text came from (an environment variable, a flag) for the error message.
 * Throws KmbError KMB_ERR_CONFIG_INVALID on anything it cannot read.
 */
export function parseLogDirectives(text: string, source = 'log directives'): LogDirectives {
  const invalid = (why: string): Error =>
    kmbError(
      'config_invalid',
      `${source}: ${why} (expected e.g. "kimberlite=info,kimberlite_vsr=debug")`,
    );
  if (text.length > logDirectivesLimits.textLengthMax) {
    throw invalid(`longer than ${logDirectivesLimits.textLengthMax} characters`);
  }
  const items = text
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item.length > 0);
  if (items.length > logDirectivesLimits.itemCountMax) {
    throw invalid(`more than ${logDirectivesLimits.itemCountMax} items`);
  }
  let defaultLevel: LogFilterLevel | undefined;
  const modules = new Map<string, LogFilterLevel>();
  for (const item of items) {
    const equals = item.indexOf('=');
    if (equals < 0) {
      defaultLevel = parseLevel(item, invalid);
      continue;
    }
    const module = item.slice(0, equals).trim();
    if (!modulePattern.test(module)) {
      throw invalid(`"${item}": "${module}" is not a module name`);
    }
    modules.set(module, parseLevel(item.slice(equals + 1).trim(), invalid));
  }
  const moduleList = [...modules].map(([module, level]) => ({ module, level }));
  return defaultLevel === undefined
    ? { modules: moduleList }
    : { defaultLevel, modules: moduleList };
}

function parseLevel(word: string, invalid: (why: string) => Error): LogFilterLevel {
  const level = word.toLowerCase();
  if (!isLogFilterLevel(level)) {
    const known = Object.keys(logLevelRank).join(', ');
    throw invalid(`"${word}" is not a level (one of ${known}), nor module=level`);
  }
  return level;
}

/** True when a directive for `directiveModule` covers `module` (itself or one under it). */
export function moduleCovers(directiveModule: string, module: string): boolean {
  if (!module.startsWith(directiveModule)) return false;
  const rest = module.slice(directiveModule.length);
  return rest === '' || rest.startsWith('_') || rest.startsWith('::');
}

/** The level in force for `module`: most specific directive, else bare level, else fallback. */
export function levelForModule(
  directives: LogDirectives,
  module: string,
  fallback: LogFilterLevel,
): LogFilterLevel {
  let best: ModuleDirective | undefined;
  for (const directive of directives.modules) {
    if (!moduleCovers(directive.module, module)) continue;
    if (best === undefined || directive.module.length > best.module.length) best = directive;
  }
  return best?.level ?? directives.defaultLevel ?? fallback;
}
