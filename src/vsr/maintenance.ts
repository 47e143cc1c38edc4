// What the replica does as time passes (onTick): heartbeats (the primary's commit messages, and
// ping/pong between every pair of replicas, which measure liveness and feed clock sync), the
// timeouts of each status, the log scrubber's reads, and repair. Time is counted in ticks only.

import type { ReplicaMessage } from './message.js';
import { primaryHeartbeat, preparePending, retransmitPrepares } from './primary.js';
import { onRecoveryTimeout } from './recovery.js';
import { scheduleRepair } from './repair.js';
import type { ReplicaCore } from './replica_core.js';
import { onPrimaryTimeout, onViewChangeTimeout, viewChangeHeartbeat } from './view_change.js';

type Ping = Extract<ReplicaMessage, { kind: 'ping' }>;
type Pong = Extract<ReplicaMessage, { kind: 'pong' }>;

export function tick<Output>(r: ReplicaCore<Output>): void {
  r.ticks += 1;
  if (r.replaying) return;
  tickClock(r);
  if (r.heartbeat.tick()) {
    r.heartbeat.start();
    heartbeat(r);
  }
  if (r.primaryTimeout.tick()) onPrimaryTimeout(r);
  if (r.viewChangeTimeout.tick()) onViewChangeTimeout(r);
  if (r.prepareTimeout.tick() && r.status === 'normal' && r.isPrimary) retransmitPrepares(r);
  if (r.recoveryTimeout.tick()) onRecoveryTimeout(r);
  tickScrubber(r);
  scheduleRepair(r);
  preparePending(r);
}

function heartbeat<Output>(r: ReplicaCore<Output>): void {
  if (r.replicaCount === 1) return;
  r.broadcast({ kind: 'ping', pingMonotonicUs: r.monotonicUs() });
  if (r.status === 'normal' && r.isPrimary) primaryHeartbeat(r);
  else viewChangeHeartbeat(r);
}

export function onPing<Output>(r: ReplicaCore<Output>, message: Ping): void {
  if (r.replaying) return;
  r.send(message.replica, {
    kind: 'pong',
    pingMonotonicUs: message.pingMonotonicUs,
    pongRealtimeUs: Math.floor(r.options.realtimeUs()),
  });
}

export function onPong<Output>(r: ReplicaCore<Output>, message: Pong): void {
  if (r.clock === null) return;
  r.clock.learn(message.replica, message.pingMonotonicUs, message.pongRealtimeUs, r.monotonicUs());
}

function tickClock<Output>(r: ReplicaCore<Output>): void {
  const clock = r.clock;
  if (clock === null) return;
  for (const event of clock.tick()) {
    const metrics = clock.metrics();
    r.event({
      kind: 'clock_offset',
      synchronized: metrics.synchronized,
      offsetUs: metrics.offsetUs,
      reason: event.kind,
    });
  }
}

function tickScrubber<Output>(r: ReplicaCore<Output>): void {
  const scrubber = r.scrubber;
  if (scrubber === null || r.status === 'recovering') return;
  scrubber.onTick();
  while (r.canRead) {
    const op = scrubber.next();
    if (op === null) return;
    r.journalRead(op, null, { kind: 'scrub' });
  }
}
