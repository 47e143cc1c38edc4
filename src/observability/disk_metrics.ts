// The instruments of a full disk (src/node/disk_space.ts): whether the node refuses writes
// because the data directory's disk is full, how much space is free there, and how many
// replica messages carrying prepares a replica dropped while its journal waited for space.
// Writes refused with KMB_ERR_STORAGE_FULL are counted in kmb_errors_total{code}, the node's one
// error counter.
//
// Invariants: every series exists from creation (kmb_storage_disk_free_bytes is NaN until the
// first measurement), and updating a cell never allocates (metric_cells.ts).

import type { Registry } from 'prom-client';
import { CounterFamily, GaugeFamily, type CounterCell, type GaugeCell } from './metric_cells.js';

export interface DiskInstruments {
  /** kmb_storage_disk_full: 1 while writes are refused because the disk is full, else 0. */
  readonly diskFull: GaugeCell;
  /** kmb_storage_disk_free_bytes: free bytes for this process on the data directory's disk. */
  readonly diskFreeBytes: GaugeCell;
  /** kmb_storage_disk_full_dropped_messages_total: prepare messages dropped while full. */
  readonly droppedMessagesTotal: CounterCell;
}

export function createDiskInstruments(registry: Registry): DiskInstruments {
  const family = (name: string, help: string) => ({ registry, name, help });
  const diskFreeBytes = new GaugeFamily(
    family(
      'kmb_storage_disk_free_bytes',
      'Bytes free for this process on the filesystem of the data directory (statfs bavail ' +
        'times block size), measured every second.',
    ),
  ).cell();
  diskFreeBytes.set(Number.NaN);
  return {
    diskFull: new GaugeFamily(
      family(
        'kmb_storage_disk_full',
        '1 while this node refuses writes because the disk of its data directory is full ' +
          '(free space below [storage] disk_free_bytes_min, or a write answered ENOSPC), else 0.',
      ),
    ).cell(),
    diskFreeBytes,
    droppedMessagesTotal: new CounterFamily(
      family(
        'kmb_storage_disk_full_dropped_messages_total',
        'Prepare and repair messages from the leader dropped because the journal of this replica ' +
          'waited for disk space with its queue at its bound; repaired once space returns.',
      ),
    ).cell(),
  };
}
