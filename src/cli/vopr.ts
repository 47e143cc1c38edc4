// vopr: the deterministic simulator's command line (docs/vopr.md).
//
//   vopr run [--seed N] [--count N] [--replicas N] [--faults LIST] [--ticks N]
//            [--liveness-ticks N] [--canary NAME] [--check-determinism] [--keep-going]
//   vopr canary [--seed N] [--seeds N] [--only NAME,...]
//
// `run` runs seeds seed, seed+1, ... (a random first seed without --seed), prints progress and
// a summary, and on a failure prints the seed, the checker and a one-line command that replays
// it. `canary` runs each canary until a checker catches it (testing/canary.ts).
//
// Exit codes (distinct, so scripts can tell failures apart):
//   0 every seed passed / every canary was caught
//   2 usage error
//   3 safety violation            4 liveness failure
//   5 crash: an exception or assertion inside replica (or kernel) code
//   6 nondeterminism: one seed gave two different trace hashes (--check-determinism)
//   7 a canary was not caught     8 a canary is not available in the replica
//  70 an internal error of the simulator itself (bin/vopr.js)

import { Command, CommanderError, InvalidArgumentError } from 'commander';
import type { CliIo } from './cli_io.js';
import { processIo, write } from './cli_io.js';
import { runCanary } from '../testing/canary.js';
import type { CanaryOutcome } from '../testing/canary.js';
import { formatFaults, parseFaults } from '../testing/fault_plan.js';
import { seedFromEntropy } from '../testing/prng.js';
import { canaryNames, isCanaryName, supportedFaults } from '../testing/replica_adapter.js';
import type { CanaryName } from '../testing/replica_adapter.js';
import { reproduceCommand, runSeed } from '../testing/simulator.js';
import type { RunOptions, RunResult, RunStatus } from '../testing/simulator.js';

export const voprExitCodes = {
  ok: 0,
  usage: 2,
  safety: 3,
  liveness: 4,
  crash: 5,
  nondeterminism: 6,
  canaryNotCaught: 7,
  canaryNotAvailable: 8,
} as const;

const statusExitCode: Record<Exclude<RunStatus, 'ok'>, number> = {
  safety: voprExitCodes.safety,
  liveness: voprExitCodes.liveness,
  crash: voprExitCodes.crash,
};

const statusText: Record<RunStatus, string> = {
  ok: 'passed',
  safety: 'SAFETY VIOLATION',
  liveness: 'LIVENESS FAILURE',
  crash: 'REPLICA CRASH',
};

interface RunFlags {
  seed?: number;
  count: number;
  replicas: number;
  faults?: string;
  ticks: number;
  livenessTicks?: number;
  canary?: string;
  checkDeterminism?: boolean;
  keepGoing?: boolean;
}

function integer(min: number, max: number): (text: string) => number {
  return (text) => {
    const value = Number(text);
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < min || value > max) {
      throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
    }
    return value;
  };
}

class Usage extends Error {}

function runOptions(flags: RunFlags, seed: number): RunOptions {
  const faults = parseFaults(flags.faults ?? supportedFaults(flags.replicas));
  if (typeof faults === 'string') throw new Usage(faults);
  if (flags.canary !== undefined && !isCanaryName(flags.canary)) {
    throw new Usage(`unknown canary "${flags.canary}" (expected ${canaryNames.join(', ')})`);
  }
  return {
    seed,
    replicaCount: flags.replicas,
    faults,
    ticks: flags.ticks,
    ...(flags.livenessTicks === undefined ? {} : { livenessTicksMax: flags.livenessTicks }),
    canary: flags.canary === undefined ? null : (flags.canary as CanaryName),
  };
}

function describeFailure(result: RunResult): string {
  return (
    `FAIL seed ${result.seed}: ${statusText[result.status]} (${result.checker ?? '-'}) ` +
    `at tick ${result.tick}\n  ${result.message}\n  trace ${result.traceHash}\n` +
    `reproduce: ${result.reproduce}\n`
  );
}

function rate(count: number, seconds: number): string {
  if (seconds <= 0) return '-';
  const value = count / seconds;
  return value >= 1000 ? String(Math.round(value)) : value.toFixed(1);
}

/** Runs one seed (twice with --check-determinism); prints a failure; returns its exit code. */
async function runOne(
  io: CliIo,
  options: RunOptions,
  flags: RunFlags,
): Promise<RunResult & { code: number }> {
  const result = runSeed(options);
  let code: number = result.status === 'ok' ? voprExitCodes.ok : statusExitCode[result.status];
  if (result.status !== 'ok') await write(io.stdout, describeFailure(result));
  if (flags.checkDeterminism === true) {
    const again = runSeed(options);
    if (again.traceHash !== result.traceHash) {
      await write(
        io.stdout,
        `FAIL seed ${options.seed}: NONDETERMINISM: trace ${result.traceHash} then ` +
          `${again.traceHash}\nreproduce: ${reproduceCommand(options)} --check-determinism\n`,
      );
      code = voprExitCodes.nondeterminism;
    }
  }
  return { ...result, code };
}

interface Tally {
  runs: number;
  ticks: number;
  failures: number;
  inconclusive: number;
  exitCode: number;
}

async function summarize(io: CliIo, tally: Tally, seconds: number): Promise<void> {
  await write(
    io.stdout,
    `${tally.failures === 0 ? 'OK' : 'FAILED'}: ${tally.runs} seed(s) run, ${tally.failures} ` +
      `failed, in ${seconds.toFixed(1)} s: ${rate(tally.runs, seconds)} seeds/s, ` +
      `${rate(tally.ticks, seconds)} ticks/s\n`,
  );
  if (tally.inconclusive === 0) return;
  await write(
    io.stdout,
    `note: in ${tally.inconclusive} seed(s) a linearizability search hit its step bound and ` +
      'was inconclusive (not counted as a failure)\n',
  );
}

/** `vopr run`: returns the exit code. */
async function run(io: CliIo, flags: RunFlags): Promise<number> {
  const seedStart = flags.seed ?? seedFromEntropy(Math.random);
  const first = runOptions(flags, seedStart);
  await write(
    io.stdout,
    `vopr run: seeds ${seedStart}..${seedStart + flags.count - 1}, ${first.replicaCount} ` +
      `replica(s), faults ${formatFaults(first.faults)}, ${first.ticks} ticks` +
      `${first.canary === null ? '' : `, canary ${first.canary}`}\n`,
  );
  const started = performance.now();
  let lastReport = started;
  const tally: Tally = {
    runs: 0,
    ticks: 0,
    failures: 0,
    inconclusive: 0,
    exitCode: 0,
  };
  for (let i = 0; i < flags.count; i++) {
    const result = await runOne(io, runOptions(flags, seedStart + i), flags);
    tally.runs += 1;
    tally.ticks += result.ticks;
    if ((result.stats.linearizability?.unknown ?? 0) > 0) tally.inconclusive += 1;
    if (result.code !== voprExitCodes.ok) {
      tally.failures += 1;
      if (tally.exitCode === voprExitCodes.ok) tally.exitCode = result.code;
      if (flags.keepGoing !== true) break;
    }
    const now = performance.now();
    if (now - lastReport >= 1000 && i + 1 < flags.count) {
      lastReport = now;
      const seconds = (now - started) / 1000;
      await write(
        io.stdout,
        `  ${i + 1}/${flags.count} seeds, ${rate(i + 1, seconds)} seeds/s, ` +
          `${rate(tally.ticks, seconds)} ticks/s, ${tally.failures} failed\n`,
      );
    }
  }
  await summarize(io, tally, (performance.now() - started) / 1000);
  return tally.exitCode;
}

function describeCanary(outcome: CanaryOutcome): string {
  switch (outcome.status) {
    case 'caught':
      return (
        `  ${outcome.canary}: caught by ${outcome.checker ?? '-'} at seed ${outcome.seed ?? '-'} ` +
        `(${outcome.runs} runs)\n    ${outcome.message}\n` +
        `    reproduce: ${outcome.reproduce ?? '-'}\n`
      );
    case 'not_caught':
      return `  ${outcome.canary}: NOT CAUGHT: ${outcome.message}\n`;
    case 'not_available':
      return `  ${outcome.canary}: not available: ${outcome.message}\n`;
  }
}

/** `vopr canary`: returns the exit code. */
async function canary(
  io: CliIo,
  flags: { seed: number; seeds: number; only?: string },
): Promise<number> {
  const names = flags.only === undefined ? [...canaryNames] : flags.only.split(',');
  for (const name of names) {
    if (!isCanaryName(name)) throw new Usage(`unknown canary "${name}"`);
  }
  await write(io.stdout, `vopr canary: up to ${flags.seeds} seeds from ${flags.seed}\n`);
  const outcomes: CanaryOutcome[] = [];
  for (const name of names as CanaryName[]) {
    // The command line searches every seed it is given for a catch by a safety checker.
    const outcome = runCanary(name, {
      seedStart: flags.seed,
      seedCount: flags.seeds,
      checkerSearchSeedsMax: flags.seeds,
    });
    outcomes.push(outcome);
    await write(io.stdout, describeCanary(outcome));
  }
  const caught = outcomes.filter((o) => o.status === 'caught').length;
  await write(io.stdout, `${caught} of ${outcomes.length} canaries caught\n`);
  if (outcomes.some((o) => o.status === 'not_caught')) return voprExitCodes.canaryNotCaught;
  if (outcomes.some((o) => o.status === 'not_available')) return voprExitCodes.canaryNotAvailable;
  return voprExitCodes.ok;
}

function buildProgram(io: CliIo, exit: { code: number }): Command {
  const program = new Command('vopr')
    .description('kimberlite-ts deterministic simulator: the real replica under seeded faults')
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
    });
  program
    .command('run')
    .description('run seeds; stop at the first failure and print how to reproduce it')
    .option('--seed <n>', 'first seed (default: random)', integer(0, Number.MAX_SAFE_INTEGER))
    .option('--count <n>', 'number of seeds', integer(1, 1e9), 1)
    .option('--replicas <n>', 'replicas in the cluster', integer(1, 6), 3)
    .option('--faults <list>', 'network,client_network,storage,crash,clock,forge | all | none')
    .option('--ticks <n>', 'ticks of the safety phase', integer(1, 1e8), 1000)
    .option('--liveness-ticks <n>', 'tick bound of the liveness phase', integer(1, 1e8))
    .option('--canary <name>', `switch on a known bug: ${canaryNames.join(', ')}`)
    .option('--check-determinism', 'run every seed twice and compare trace hashes')
    .option('--keep-going', 'do not stop at the first failing seed')
    .action(async (flags: RunFlags) => {
      exit.code = await run(io, flags);
    });
  program
    .command('canary')
    .description('prove the checkers bite: run each canary until a checker catches it')
    .option('--seed <n>', 'first seed', integer(0, Number.MAX_SAFE_INTEGER), 1)
    .option('--seeds <n>', 'seeds to try per canary', integer(1, 1e6), 100)
    .option('--only <names>', 'comma-separated canaries to run')
    .action(async (flags: { seed: number; seeds: number; only?: string }) => {
      exit.code = await canary(io, flags);
    });
  return program;
}

/** Runs vopr on arguments (without node and script path); resolves with the exit code. */
export async function runVopr(args: readonly string[], io: CliIo): Promise<number> {
  const exit = { code: voprExitCodes.ok as number };
  try {
    await buildProgram(io, exit).parseAsync([...args], { from: 'user' });
    return exit.code;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version') {
        return voprExitCodes.ok;
      }
      return voprExitCodes.usage;
    }
    if (error instanceof Usage) {
      await write(io.stderr, `error: ${error.message}\n`);
      return voprExitCodes.usage;
    }
    throw error;
  }
}

/** The entry point of bin/vopr.js: argv is process.argv. */
export async function main(argv: string[]): Promise<void> {
  process.exitCode = await runVopr(argv.slice(2), processIo());
}
