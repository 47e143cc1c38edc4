// The node's structured logger: one line per record, in the monitoring spec's JSON shape
// ({"timestamp","level","target","message","fields"}) or as readable text, with a level per
// module set by KMB_LOG (RUST_LOG is honoured as an alias) and a rate limit for warnings that
// repeat.
//
// Why not pino (DESIGN.md §7 suggests it): pino writes a child logger's bindings at the top
// level of the object, next to `level`, while the spec wants them inside `fields` with the
// call's own fields; without fields it omits the `fields` key altogether; its keys come out in
// its own order (level first, message last); it has no per-module level directives; and its
// text output needs pino-pretty in a worker thread. Bending it into this shape would leave it
// doing no more than JSON.stringify and stream.write, which is all this file does.
//
// Cost: each method first compares the level's rank with the logger's threshold, a number
// fixed when the logger is made, and returns if it is below. Nothing else happens for a
// disabled level; callers who build expensive fields guard them with `enabled(level)`.
// Invariants: one write per record, each a whole line; child bindings never change after
// creation; the level configuration is read once, when the root logger is created.

import { assert } from '../core/assert.js';
import { kmbError } from '../core/errors.js';
import {
  levelForModule,
  logLevelRank,
  moduleCovers,
  parseLogDirectives,
  type LogDirectives,
  type LogFilterLevel,
  type LogLevel,
} from './log_directives.js';
import {
  formatJsonLine,
  formatTextLine,
  isLogFormat,
  type LogFields,
  type LogFormat,
} from './log_format.js';
import { recentLogTee } from './log_ring.js';
import { RateLimiter, suppressed } from './rate_limiter.js';

export { parseLogDirectives } from './log_directives.js';
export type { LogDirectives, LogFilterLevel, LogLevel } from './log_directives.js';
export type { LogFields, LogFormat } from './log_format.js';

/**
 * Modules and the target each shows in the `target` key. A module may also be a sub-module of
 * one of these (`kimberlite_vsr::view_change`), which shows its parent's target.
 */
export const logTargets = {
  kimberlite: 'kmb',
  kimberlite_server: 'kmb_server',
  kimberlite_vsr: 'kmb_consensus',
  kimberlite_storage: 'kmb_storage',
  kimberlite_net: 'kmb_net',
  kimberlite_kernel: 'kmb_kernel',
  kimberlite_ops: 'kmb_ops',
  kimberlite_client: 'kmb_client',
} as const;
export type LogModule = keyof typeof logTargets;

export const rootLogModule: LogModule = 'kimberlite';

/** Where lines go: anything with a `write(string)`, such as process.stdout or a file stream. */
export interface LogDestination {
  write(line: string): unknown;
}

export interface LoggerOptions {
  /** The root logger's module (default `kimberlite`). */
  module?: string;
  /** Fields on every line of this logger and its children. */
  bindings?: LogFields;
  /** Directives from a command-line flag; these beat the environment. */
  directives?: string;
  /** Directives from the config file, used when neither KMB_LOG nor RUST_LOG is set. */
  defaultDirectives?: string;
  /** Format from a command-line flag; beats KMB_LOG_FORMAT / RUST_LOG_FORMAT. */
  format?: LogFormat;
  /** Format from the config file, used when neither environment variable is set. */
  defaultFormat?: LogFormat;
  /** The environment to read (default process.env). */
  env?: Readonly<Record<string, string | undefined>>;
  /** Default process.stdout. */
  destination?: LogDestination;
  /** Wall-clock milliseconds since the epoch, for timestamps (default Date.now). */
  wallClockMs?: () => number;
  /** Monotonic milliseconds, for rate limits (default performance.now). */
  monotonicMs?: () => number;
}

/** The configuration a logger runs with, and where each part came from. */
export interface LogConfig {
  directives: LogDirectives;
  directivesSource: string;
  format: LogFormat;
  formatSource: string;
}

/** State shared by a root logger and all its children. */
export interface LoggerCore {
  readonly directives: LogDirectives;
  readonly format: LogFormat;
  readonly destination: LogDestination;
  readonly wallClockMs: () => number;
  readonly monotonicMs: () => number;
  readonly rateLimiter: RateLimiter;
}

const modulePattern = /^[a-z][a-z0-9_]*(::[a-z0-9_]+)*$/;
const fallbackLevel: LogFilterLevel = 'info';

function firstSet(
  candidates: ReadonlyArray<readonly [string, string | undefined]>,
): readonly [string, string] | undefined {
  for (const [source, value] of candidates) {
    if (value !== undefined && value.trim() !== '') return [source, value.trim()];
  }
  return undefined;
}

/**
 * Decides directives and format: flag, then KMB_LOG / KMB_LOG_FORMAT, then RUST_LOG /
 * RUST_LOG_FORMAT, then the config file's defaults, then `info` and `json`.
 * Throws KMB_ERR_CONFIG_INVALID naming the source of a bad value.
 */
export function resolveLogConfig(options: LoggerOptions = {}): LogConfig {
  const env = options.env ?? process.env;
  const directiveText = firstSet([
    ['log directives flag', options.directives],
    ['KMB_LOG', env['KMB_LOG']],
    ['RUST_LOG', env['RUST_LOG']],
    ['configured log directives', options.defaultDirectives],
  ]) ?? ['default', fallbackLevel];
  const formatText = firstSet([
    ['log format flag', options.format],
    ['KMB_LOG_FORMAT', env['KMB_LOG_FORMAT']],
    ['RUST_LOG_FORMAT', env['RUST_LOG_FORMAT']],
    ['configured log format', options.defaultFormat],
  ]) ?? ['default', 'json'];
  const format = formatText[1].toLowerCase();
  if (!isLogFormat(format)) {
    const why = `${formatText[0]}: "${formatText[1]}" is not a log format (json or text)`;
    throw kmbError('config_invalid', why);
  }
  return {
    directives: parseLogDirectives(directiveText[1], directiveText[0]),
    directivesSource: directiveText[0],
    format,
    formatSource: formatText[0],
  };
}

/** The root logger, configured from options and the environment. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const config = resolveLogConfig(options);
  const core: LoggerCore = {
    directives: config.directives,
    format: config.format,
    destination: options.destination ?? recentLogTee(process.stdout),
    wallClockMs: options.wallClockMs ?? Date.now,
    monotonicMs: options.monotonicMs ?? (() => performance.now()),
    rateLimiter: new RateLimiter(),
  };
  return new Logger(core, options.module ?? rootLogModule, options.bindings ?? {});
}

/** A logger that writes nothing, for tests and tools that do not want logs. */
export function silentLogger(): Logger {
  return createLogger({ directives: 'off', env: {}, destination: { write: () => true } });
}

/** The display target of a module: its own entry, or the nearest enclosing module's. */
export function targetForModule(module: string): string {
  let best: LogModule = rootLogModule;
  for (const candidate of Object.keys(logTargets) as LogModule[]) {
    if (moduleCovers(candidate, module) && candidate.length > best.length) best = candidate;
  }
  return logTargets[best];
}

export class Logger {
  /** The module this logger writes for, e.g. `kimberlite_vsr`. */
  readonly module: string;
  /** What appears in the `target` key, e.g. `kmb_consensus`. */
  readonly target: string;
  /** The module's level; records above it are dropped. */
  readonly level: LogFilterLevel;
  private readonly threshold: number;
  private readonly targetJson: string;
  private readonly bindings: LogFields;
  private readonly hasBindings: boolean;

  /** Use createLogger() or child(); this constructor is internal. */
  constructor(
    private readonly core: LoggerCore,
    module: string,
    bindings: LogFields,
  ) {
    assert(modulePattern.test(module), `bad log module name ${module}`);
    this.module = module;
    this.target = targetForModule(module);
    this.level = levelForModule(core.directives, module, fallbackLevel);
    this.threshold = logLevelRank[this.level];
    this.targetJson = JSON.stringify(this.target);
    this.bindings = bindings;
    this.hasBindings = Object.keys(bindings).length > 0;
  }

  /** True when `level` would be written; guard expensive fields with it. */
  enabled(level: LogLevel): boolean {
    return logLevelRank[level] <= this.threshold;
  }

  error(message: string, fields?: LogFields): void {
    if (this.threshold < 1) return;
    this.write('error', message, fields);
  }

  warn(message: string, fields?: LogFields): void {
    if (this.threshold < 2) return;
    this.write('warn', message, fields);
  }

  info(message: string, fields?: LogFields): void {
    if (this.threshold < 3) return;
    this.write('info', message, fields);
  }

  debug(message: string, fields?: LogFields): void {
    if (this.threshold < 4) return;
    this.write('debug', message, fields);
  }

  trace(message: string, fields?: LogFields): void {
    if (this.threshold < 5) return;
    this.write('trace', message, fields);
  }

  /**
   * A logger whose lines carry `bindings` in `fields` as well as this logger's (a call's own
   * fields win on a clash). With `module`, it writes for that module, with that module's level
   * and target; a component takes its logger this way: `root.child({ node_id }, 'kimberlite_vsr')`.
   */
  child(bindings: LogFields, module?: string): Logger {
    const merged = this.hasBindings ? { ...this.bindings, ...bindings } : bindings;
    return new Logger(this.core, module ?? this.module, merged);
  }

  /**
   * A warning that may repeat: the first for `key` is written, then at most one per
   * `intervalMs`, with `suppressed` in its fields counting those dropped since the last one.
   * Keys are shared by every logger of one root; make them name the condition.
   */
  warnRateLimited(key: string, intervalMs: number, message: string, fields?: LogFields): void {
    this.rateLimited('warn', key, intervalMs, message, fields);
  }

  /** As warnRateLimited, at any level: for events that are routine one at a time but can storm. */
  rateLimited(
    level: LogLevel,
    key: string,
    intervalMs: number,
    message: string,
    fields?: LogFields,
  ): void {
    if (logLevelRank[level] > this.threshold) return;
    const suppressedCount = this.core.rateLimiter.admit(key, intervalMs, this.core.monotonicMs());
    if (suppressedCount === suppressed) return;
    this.write(level, message, { ...fields, suppressed: suppressedCount });
  }

  private write(level: LogLevel, message: string, fields: LogFields | undefined): void {
    let all = this.bindings;
    if (fields !== undefined) all = this.hasBindings ? { ...this.bindings, ...fields } : fields;
    const timestamp = new Date(this.core.wallClockMs()).toISOString();
    const line =
      this.core.format === 'json'
        ? formatJsonLine(timestamp, level, this.targetJson, message, all)
        : formatTextLine(timestamp, level, this.target, message, all);
    this.core.destination.write(line);
  }
}
