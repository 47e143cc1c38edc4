// The V8 flags kimberlite-server runs with, and the check that it got them. V8 only reads heap
// flags when the process starts (v8.setFlagsFromString() afterwards was measured to change
// nothing), so they travel on the command line: in bin/kimberlite-server.js's `#!` line (which
// is how the installed `kimberlite-server` command, `npm start` and the systemd unit start it)
// and in every place that starts the server with `node` itself (tests, benchmarks,
// scripts/cluster.mjs), all of which take them from here. A test holds the `#!` line and the
// start script to this list.
//
// --initial-old-space-size=128: without it, V8 sizes the old generation's limit from the small
// live heap of a fresh server, and under a sustained write load it then starts incremental
// marking again and again far below that limit: with 100-event requests on 3 replicas the
// leader ran many mark-compacts a second, with marking threads competing for the same two
// cores, and the flag cut them to a few and raised throughput (docs/performance.md, "Figures
// behind the code"). The old generation may now grow to ~128 MB of garbage before a full
// collection, about what a server holds resident with a million events anyway.

/** Node/V8 flags the server process expects (node FLAGS bin/kimberlite-server.js ...). */
export const serverNodeFlags: readonly string[] = ['--initial-old-space-size=128'];

/**
 * The expected flags missing from a process's execArgv. A flag given with another value (an
 * operator's own --initial-old-space-size=512) counts as present.
 */
export function missingServerNodeFlags(execArgv: readonly string[]): string[] {
  return serverNodeFlags.filter((flag) => {
    const name = flag.split('=')[0]!;
    return !execArgv.some((arg) => arg === name || arg.startsWith(`${name}=`));
  });
}
