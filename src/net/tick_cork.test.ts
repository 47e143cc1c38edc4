// Proves TickCork: any number of holds in one tick cork the socket once and the next tick
// uncorks it once; a release before then uncorks at once and the scheduled uncork does nothing
// more; a hold in a later tick corks again. (A Socket's cork count would go wrong otherwise:
// frames held back forever, or flushed one by one.)

import { strict as assert } from 'node:assert';
import type { Socket } from 'node:net';
import { describe, it } from 'node:test';
import { TickCork } from './tick_cork.js';

function countingSocket(): { socket: Socket; corks: () => number; uncorks: () => number } {
  let corks = 0;
  let uncorks = 0;
  const socket = { cork: () => (corks += 1), uncork: () => (uncorks += 1) };
  return { socket: socket as unknown as Socket, corks: () => corks, uncorks: () => uncorks };
}

const nextTick = (): Promise<void> => new Promise((resolve) => process.nextTick(resolve));

describe('TickCork', () => {
  it('corks once per tick and uncorks on the next', async () => {
    const { socket, corks, uncorks } = countingSocket();
    const cork = new TickCork(socket);
    for (let index = 0; index < 5; index++) cork.hold();
    assert.equal(corks(), 1);
    assert.equal(uncorks(), 0);
    await nextTick();
    assert.equal(uncorks(), 1);
    cork.hold();
    cork.hold();
    assert.equal(corks(), 2);
    await nextTick();
    assert.equal(uncorks(), 2);
  });

  it('releases at once, and the scheduled uncork does not uncork again', async () => {
    const { socket, corks, uncorks } = countingSocket();
    const cork = new TickCork(socket);
    cork.hold();
    cork.release();
    cork.release();
    assert.equal(uncorks(), 1);
    await nextTick();
    assert.equal(uncorks(), 1);
    assert.equal(corks(), 1);
  });
});
