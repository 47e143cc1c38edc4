// Every bound in the system has a name here (HOUSE_RULES §7). Values are chosen for a single
// 2-core machine and can be revisited; code checks against these names, never against literals.

const KiB = 1024;
const MiB = 1024 * KiB;

export const constants = {
  /** Replicas in one cluster (standbys not counted). */
  replicaCountMax: 6,

  /** A journal segment is closed and a new one started past this size. */
  journalSegmentSizeBytesMax: 64 * MiB,
  /** Copies of the superblock; the newest valid copy wins. */
  superblockCopyCount: 4,
  superblockCopySizeBytes: 4 * KiB,

  /** The body of one prepare (a batch of requests). */
  prepareBodySizeBytesMax: 4 * MiB,
  /** Requests batched into one prepare. */
  prepareRequestCountMax: 1024,
  /** Prepares in flight (prepared, not yet committed) at the primary. */
  pipelinePrepareCountMax: 8,
  /**
   * Batching under moderate load: once this many prepares are in flight, a further prepare is
   * formed only when at least prepareBatchRequestCountMin requests wait; otherwise they wait for
   * a commit to free the pipeline and go out together. Without it, requests trickling in fill
   * the pipeline with prepares of one or two requests, each paying a journal write, two sends
   * and two acknowledgements. Requests that already carry many bytes between them (clients
   * that batch their own events) are worth a prepare of their own: at prepareBatchSizeBytesMin
   * queued body bytes the prepare is formed whatever the count.
   */
  prepareBatchWaitInFlightMin: 1,
  prepareBatchRequestCountMin: 32,
  prepareBatchSizeBytesMin: 16 * KiB,
  /** Requests queued at the primary waiting for room in the pipeline. */
  requestQueueCountMax: 16 * 1024,

  /**
   * Ops of the log suffix carried by a DoViewChange or StartView (the ops after the sender's
   * committed anchor). A replica never holds more than a pipeline of uncommitted ops beyond what
   * it knows is committed, so twice the pipeline leaves room for commits not yet executed.
   */
  viewChangeSuffixCountMax: 16,
  /** Prepare bodies carried whole in one DoViewChange or StartView; the rest go as headers. */
  viewChangeBodiesSizeBytesMax: 4 * MiB,
  /** Log entries a replica holds in memory: its unexecuted suffix and repairs awaiting order. */
  logEntryCountMax: 1024,
  /** Ops asked for by one bulk repair request (request_prepares); answered one prepare each. */
  repairRangeCountMax: 256,
  /** request_prepare messages (single ops, by checksum) awaiting an answer at once. */
  repairPrepareInflightMax: 32,
  /** Committed ops known to be corrupt in this replica's journal, awaiting repair. */
  faultyOpCountMax: 256,
  /** journal_read effects awaiting onJournalRead at once (serving repairs, scrubbing, checks). */
  journalReadInflightMax: 512,

  /** One frame on the wire, header included. */
  frameSizeBytesMax: 8 * MiB,
  /** The body of one client request. */
  requestBodySizeBytesMax: 1 * MiB,
  /** Client connections served at once by one node. */
  connectionCountMax: 4096,
  /** Bytes a connection may have queued for sending before it is considered stalled. */
  connectionSendQueueBytesMax: 32 * MiB,

  /** Client sessions kept in the replicated client table; the oldest is evicted past this. */
  clientSessionCountMax: 4096,

  tenantNameBytesMax: 128,
  streamNameBytesMax: 256,
  actorBytesMax: 256,
  reasonBytesMax: 1024,
  correlationIdBytesMax: 128,
  tenantCountMax: 100_000,
  streamCountMax: 1_000_000,
  /** Events in one append command. */
  appendEventCountMax: 10_000,
  /** Bytes of one event's data. */
  eventSizeBytesMax: 512 * KiB,
  /** Events returned by one read. */
  readEventCountMax: 10_000,
  /** Bytes returned by one read (the read stops early rather than exceed it). */
  readSizeBytesMax: 4 * MiB,
} as const;
