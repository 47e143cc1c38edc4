// kimberlite-cli: the operator's command line for tenants, streams and the cluster (DESIGN.md
// §6, docs/cli.md). It parses arguments with commander, connects with the SDK (or, for the
// operator commands `cluster`, `replica` and `replication`, asks each replica on its own), runs
// one command and reports the outcome through the exit code: 0 done, 1 failed (`error: CODE:
// message` on stderr, or `{"error":{"code","message"}}` with --json) or, for the operator
// commands, the cluster is not healthy, 2 the command line was wrong.
//
// runCli() does the work with its input and output passed in, so tests run it in-process;
// main() is what bin/kimberlite-cli.js calls with process.argv.

import { Command, InvalidArgumentError } from 'commander';
import { connect, dataClasses } from '../client/client.js';
import type { DataClass } from '../client/client.js';
import { formatAddress, parseAddressList } from '../client/address.js';
import { constants } from '../core/constants.js';
import { KmbError, errorCodes } from '../core/errors.js';
import { fieldLimitMessage, fieldNames } from '../kernel/kernel.js';
import { newNameProblem } from '../kernel/kernel.js';
import type { NameKind } from '../kernel/kernel.js';
import * as operator from './cli_cluster.js';
import type { OperatorContext } from './cli_cluster.js';
import * as commands from './cli_commands.js';
import { debugProfile, profileSecondsMax } from './cli_debug.js';
import { parseDuration } from './cli_duration.js';
import { eventsFromDataOption } from './cli_events.js';
import type { CommandContext, GlobalOptions } from './cli_commands.js';
import type { CliIo } from './cli_io.js';
import { UsageError, exitCodes, processIo, runProgram } from './cli_io.js';

const clusterDefault = '127.0.0.1:7001';
const timeoutMsDefault = 10_000;

function integerOption(name: string, min: number) {
  return (value: string): number => {
    const parsed = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(parsed) || parsed < min) {
      throw new InvalidArgumentError(`${name} must be an integer of at least ${min}`);
    }
    return parsed;
  };
}

function durationOption(value: string): number {
  try {
    return parseDuration(value);
  } catch (error) {
    throw new InvalidArgumentError(error instanceof Error ? error.message : String(error));
  }
}

/** A CPU profile's length in whole seconds, within what the ops endpoint takes. */
function profileDurationOption(value: string): number {
  const seconds = durationOption(value) / 1000;
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > profileSecondsMax) {
    throw new InvalidArgumentError(`use whole seconds from 1s to ${profileSecondsMax}s`);
  }
  return seconds;
}

function consistencyOption(value: string): 'linearizable' | 'stale' {
  if (value !== 'linearizable' && value !== 'stale') {
    throw new InvalidArgumentError('use linearizable or stale');
  }
  return value;
}

function dataClassOption(value: string): DataClass {
  const found = dataClasses.find((name) => name.toLowerCase() === value.toLowerCase());
  if (found === undefined) {
    throw new InvalidArgumentError(`unknown data class; use one of ${dataClasses.join(', ')}`);
  }
  return found;
}

/**
 * Collects repeated --data values, checking each (UTF-8, JSON, event size) before connecting.
 * Its UsageError is thrown as it is, not as commander's InvalidArgumentError, whose message
 * would repeat the whole value (up to megabytes of it).
 */
function dataOption(value: string, previous: string[] | undefined): string[] {
  if (value !== '-') eventsFromDataOption(value);
  return [...(previous ?? []), value];
}

/** A text option the server bounds (--actor, --reason...), refused here as the SDK would. */
function boundedTextOption(field: string, bytesMax: number) {
  return (value: string): string => {
    const sizeBytes = Buffer.byteLength(value, 'utf8');
    if (sizeBytes <= bytesMax) return value;
    throw new UsageError(fieldLimitMessage(field, sizeBytes, bytesMax), errorCodes.limit_exceeded);
  };
}

/** --name of a new tenant or stream, refused here with the message the server would give. */
function newNameOption(kind: NameKind) {
  return (value: string): string => {
    const problem = newNameProblem(value, kind);
    if (problem !== null) throw new UsageError(problem.message, problem.code);
    return value;
  };
}

function addressesOf(cluster: string): string[] {
  try {
    return parseAddressList(cluster).map(formatAddress);
  } catch (error) {
    if (error instanceof KmbError) throw new UsageError(`--cluster: ${error.message}`);
    throw error;
  }
}

function globalOptions(command: Command, io: CliIo): GlobalOptions {
  const opts = command.optsWithGlobals<Record<string, unknown>>();
  const text = (key: string): string | undefined =>
    typeof opts[key] === 'string' ? opts[key] : undefined;
  return {
    cluster: text('cluster') ?? io.env['KMB_CLUSTER'] ?? clusterDefault,
    clusterName: text('clusterName') ?? '',
    actor: text('actor'),
    reason: text('reason'),
    correlationId: text('correlationId'),
    timeoutMs: typeof opts['timeoutMs'] === 'number' ? opts['timeoutMs'] : timeoutMsDefault,
    json: opts['json'] === true,
  };
}

type Action = (context: CommandContext, command: Command) => Promise<void>;

/** Wraps an action: connect with the global options, run it, always close. */
function withClient(io: CliIo, action: Action) {
  return async (...args: unknown[]): Promise<void> => {
    const command = args[args.length - 1] as Command;
    const globals = globalOptions(command, io);
    const addresses = addressesOf(globals.cluster);
    const db = await connect({
      addresses,
      clusterName: globals.clusterName,
      requestTimeoutMs: globals.timeoutMs,
      ...(globals.actor === undefined ? {} : { actor: globals.actor }),
    });
    try {
      await action({ io, globals, db }, command);
    } finally {
      await db.close();
    }
  };
}

type OperatorAction = (context: OperatorContext, command: Command) => Promise<void>;

/** Wraps an operator action: it asks the replicas itself, so no client connects first. */
function withReplicas(io: CliIo, exit: { code: number }, action: OperatorAction) {
  return async (...args: unknown[]): Promise<void> => {
    const command = args[args.length - 1] as Command;
    const globals = globalOptions(command, io);
    await action({ io, globals, addresses: addressesOf(globals.cluster), exit }, command);
  };
}

function addOperatorCommands(program: Command, io: CliIo, exit: { code: number }): void {
  const cluster = program.command('cluster').description("the cluster's health and history");
  cluster
    .command('status')
    .description("every replica's status, view, op, commit and lag; exit 1 unless healthy")
    .action(withReplicas(io, exit, (context) => operator.clusterStatus(context)));
  cluster
    .command('view-changes')
    .description('the view changes (leader elections) the replicas remember, merged by view')
    .option('--since <duration>', 'only those in the last 30s, 10m, 2h, 1d...', durationOption)
    .action(
      withReplicas(io, exit, (context, command) => {
        const sinceMs = command.opts()['since'] as number | undefined;
        return operator.clusterViewChanges(context, { sinceMs: sinceMs ?? null });
      }),
    );
  const replica = program.command('replica').description('one replica');
  replica
    .command('status')
    .description("one replica's own status; exit 1 when it does not answer")
    .requiredOption(
      '--replica-id <n>',
      'the replica index (0-based)',
      integerOption('--replica-id', 0),
    )
    .option('--watch', 'refresh until interrupted (Ctrl-C)')
    .option(
      '--interval-ms <ms>',
      'refresh period with --watch',
      integerOption('--interval-ms', 100),
      1000,
    )
    .action(
      withReplicas(io, exit, (context, command) => {
        const options = command.opts();
        return operator.replicaStatus(context, {
          replicaId: options['replicaId'] as number,
          watch: options['watch'] === true,
          intervalMs: options['intervalMs'] as number,
        });
      }),
    );
  program
    .command('debug')
    .description('look inside one replica')
    .command('profile')
    .description("a replica's CPU profile (or heap with --heap), written as a pprof file")
    .requiredOption(
      '--replica-id <n>',
      'the replica index (0-based)',
      integerOption('--replica-id', 0),
    )
    .option(
      '--duration <duration>',
      'how long to sample the CPU: 30s, 2m (whole seconds, 1 s to 5 m)',
      profileDurationOption,
      30,
    )
    .option('--heap', 'the heap (allocations still live) instead of the CPU')
    .option('--output <file>', 'where to write it (default kimberlite-replica-N-KIND-TIME.pb.gz)')
    .action(
      withReplicas(io, exit, (context, command) => {
        const options = command.opts();
        return debugProfile(context, {
          replicaId: options['replicaId'] as number,
          durationSeconds: options['duration'] as number,
          heap: options['heap'] === true,
          output: (options['output'] as string | undefined) ?? null,
        });
      }),
    );
  const replication = program.command('replication').description('replication between replicas');
  replication
    .command('lag')
    .description("each replica's commit behind the leader's, in ops and ms")
    .option('--all', 'every replica (the default)')
    .option('--replica-id <n>', 'only this replica', integerOption('--replica-id', 0))
    .action(
      withReplicas(io, exit, (context, command) => {
        const replicaId = command.opts()['replicaId'] as number | undefined;
        return operator.replicationLag(context, { replicaId });
      }),
    );
}

function addTenantCommands(program: Command, io: CliIo): void {
  const tenant = program.command('tenant').description('create and list tenants');
  tenant
    .command('create')
    .description('create a tenant')
    .requiredOption(
      '--name <name>',
      'the tenant name (unique in the cluster)',
      newNameOption('tenant'),
    )
    .action(
      withClient(io, (context, command) => commands.tenantCreate(context, command.opts()['name'])),
    );
  tenant
    .command('list')
    .description('list every tenant')
    .action(withClient(io, (context) => commands.tenantList(context)));
}

function addStreamCommands(program: Command, io: CliIo): void {
  const stream = program.command('stream').description('create, list, append to and read streams');
  stream
    .command('create')
    .description('create a stream in a tenant')
    .requiredOption('--tenant <tenant>', 'tenant id or name')
    .requiredOption(
      '--name <name>',
      'the stream name (unique in its tenant)',
      newNameOption('stream'),
    )
    .option('--data-class <class>', `one of ${dataClasses.join(', ')}`, dataClassOption, 'Public')
    .action(withClient(io, (context, command) => commands.streamCreate(context, command.opts())));
  stream
    .command('list')
    .description("list a tenant's streams")
    .requiredOption('--tenant <tenant>', 'tenant id or name')
    .action(
      withClient(io, (context, command) => commands.streamList(context, command.opts()['tenant'])),
    );
  stream
    .command('append')
    .description('append events (JSON) to a stream')
    .requiredOption('--tenant <tenant>', 'tenant id or name')
    .requiredOption('--stream <stream>', 'stream id or name')
    .requiredOption(
      '--data <json>',
      'an event as JSON (an array: one event per element); repeatable; - reads NDJSON from stdin',
      dataOption,
    )
    .option(
      '--expected-offset <n>',
      'append only if the stream is at this offset',
      integerOption('--expected-offset', 0),
    )
    .action(withClient(io, (context, command) => commands.streamAppend(context, command.opts())));
  stream
    .command('read')
    .description('print events of a stream, one per line')
    .requiredOption('--tenant <tenant>', 'tenant id or name')
    .requiredOption('--stream <stream>', 'stream id or name')
    .option('--from <offset>', 'the first offset to print', integerOption('--from', 0), 0)
    .option(
      '--limit <n>',
      'print at most this many events (default: to the end)',
      integerOption('--limit', 1),
    )
    .option(
      '--consistency <mode>',
      'linearizable (the leader only) or stale (any replica within --lag-ops-max)',
      consistencyOption,
      'linearizable',
    )
    .option(
      '--lag-ops-max <n>',
      'with --consistency stale: how many ops the serving replica may trail (default 100)',
      integerOption('--lag-ops-max', 0),
    )
    .action(withClient(io, (context, command) => commands.streamRead(context, command.opts())));
  stream
    .command('verify')
    .description("recompute a stream's hash chain and check it against the cluster's head")
    .requiredOption('--tenant <tenant>', 'tenant id or name')
    .requiredOption('--stream <stream>', 'stream id or name')
    .action(withClient(io, (context, command) => commands.streamVerify(context, command.opts())));
}

/**
 * The commander program, writing to the given io and never exiting the process. Commands whose
 * exit code is a verdict (the operator commands) store it in `exit`.
 */
export function buildProgram(io: CliIo, exit: { code: number } = { code: exitCodes.ok }): Command {
  const program = new Command('kimberlite-cli')
    .description('kimberlite-ts command line: tenants, streams and the cluster')
    .option(
      '--cluster <addresses>',
      `replica addresses host:port,... (env KMB_CLUSTER, default ${clusterDefault})`,
    )
    .option('--cluster-name <name>', 'refuse nodes of any other cluster')
    .option(
      '--actor <name>',
      'who is acting, recorded with every change (default: OS user)',
      boundedTextOption(fieldNames.actor, constants.actorBytesMax),
    )
    .option(
      '--reason <text>',
      'why, recorded with every change',
      boundedTextOption(fieldNames.reason, constants.reasonBytesMax),
    )
    .option(
      '--correlation-id <id>',
      'an id tying the change to a ticket or request',
      boundedTextOption(fieldNames.correlationId, constants.correlationIdBytesMax),
    )
    .option(
      '--timeout-ms <ms>',
      `give up after this long (default ${timeoutMsDefault})`,
      integerOption('--timeout-ms', 1),
    )
    .option('--json', 'machine-readable output (see docs/cli.md)')
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
      outputError: () => undefined,
    });
  addTenantCommands(program, io);
  addStreamCommands(program, io);
  addOperatorCommands(program, io, exit);
  return program;
}

/** Runs the CLI on arguments (without node and script path); resolves with the exit code. */
export async function runCli(args: readonly string[], io: CliIo): Promise<number> {
  const exit = { code: exitCodes.ok as number };
  return runProgram(buildProgram(io, exit), exit, args, io);
}

/** The entry point of bin/kimberlite-cli.js: argv is process.argv. */
export async function main(argv: string[]): Promise<void> {
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    // A closed pipe (`kimberlite-cli stream read ... | head`) is not a failure of ours.
    if (error.code === 'EPIPE') process.exit(exitCodes.ok);
    throw error;
  });
  process.exitCode = await runCli(argv.slice(2), processIo());
}
