// Proves the disk-full state: free space below the floor makes `full` true with one ERROR log
// line and the gauge at 1; space returning makes it false with one INFO line; storage waiting
// for space (a journal write answered ENOSPC) makes it full whatever the floor says, until the
// journal resumes; a failing statfs changes nothing; and prepare messages are dropped only while
// the journal waits with its queue at the bound (other messages, or a queue below it, pass).
// The free-space measurement is injected, so no disk has to fill.

import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { constants } from '../core/constants.js';
import { errorCodes } from '../core/errors.js';
import { replicaMessageTag } from '../net/replica_codec.js';
import { createDiskInstruments } from '../observability/disk_metrics.js';
import { createLogger } from '../observability/logger.js';
import { DiskSpace } from './disk_space.js';

function setup(freeBytesMin: number) {
  const lines: { level: string; message: string; fields: Record<string, unknown> }[] = [];
  const logger = createLogger({
    env: {},
    destination: { write: (line: string) => lines.push(JSON.parse(line)) },
  });
  const instruments = createDiskInstruments(new Registry());
  let free: number | Error = 10_000;
  const disk = new DiskSpace({
    dataDir: '/data',
    freeBytesMin,
    logger,
    instruments,
    freeBytes: () => (free instanceof Error ? Promise.reject(free) : Promise.resolve(free)),
  });
  const setFree = (value: number | Error): void => {
    free = value;
  };
  const messages = (): string[] => lines.map((line) => `${line.level} ${line.message}`);
  return { disk, instruments, setFree, messages, lines };
}

describe('disk space', () => {
  it('is full below the floor and resumes above it, logging each change once', async () => {
    const { disk, instruments, setFree, messages, lines } = setup(4096);
    await disk.check();
    assert.equal(disk.full, false);
    assert.equal(instruments.diskFreeBytes.value, 10_000);
    setFree(1000);
    await disk.check();
    await disk.check();
    assert.equal(disk.full, true);
    assert.equal(instruments.diskFull.value, 1);
    assert.equal(disk.refusal().code, errorCodes.storage_full);
    assert.match(disk.refusal().message, /free: 1000 bytes, floor: 4096 bytes/);
    setFree(new Error('EIO: statfs failed'));
    await disk.check();
    assert.equal(disk.full, true, 'a failed measurement changes nothing');
    setFree(8192);
    await disk.check();
    assert.equal(disk.full, false);
    assert.equal(instruments.diskFull.value, 0);
    assert.deepEqual(messages(), [
      'ERROR Disk full: writes refused until space returns',
      'WARN Could not measure free disk space',
      'INFO Disk space returned: writes resume',
    ]);
    assert.equal(lines[0]?.fields['free_bytes'], 1000);
    assert.equal(lines[0]?.fields['floor_bytes'], 4096);
  });

  it('is full while the journal waits for space, whatever the floor says', async () => {
    const { disk, messages } = setup(0);
    await disk.check();
    disk.setWaiting('journal', true, new Error('ENOSPC: no space left on device'));
    assert.equal(disk.full, true);
    disk.setWaiting('superblock', true);
    disk.setWaiting('journal', false);
    assert.equal(disk.full, true, 'the superblock still waits');
    disk.setWaiting('superblock', false);
    assert.equal(disk.full, false);
    assert.deepEqual(messages(), [
      'ERROR Disk full: writes refused until space returns',
      'INFO Disk space returned: writes resume',
    ]);
  });

  it('drops prepares only while the journal waits with its queue at the bound', () => {
    const { disk, instruments } = setup(0);
    const bound = constants.diskFullJournalPendingCountMax;
    assert.equal(disk.dropsReplicaMessage(replicaMessageTag.prepare, bound), false);
    disk.setWaiting('journal', true);
    assert.equal(disk.dropsReplicaMessage(replicaMessageTag.prepare, bound - 1), false);
    assert.equal(disk.dropsReplicaMessage(replicaMessageTag.prepare, bound), true);
    assert.equal(disk.dropsReplicaMessage(replicaMessageTag.repair_prepare, bound), true);
    assert.equal(disk.dropsReplicaMessage(replicaMessageTag.commit, bound), false);
    assert.equal(instruments.droppedMessagesTotal.value, 2);
  });
});
