// Every bound in the system has a name here (HOUSE_RULES §7). Values are chosen for a single
// 2-core machine and can be revisited; code checks against these names, never against literals.

const KiB = 1024;
const MiB = 1024 * KiB;

export const constants = {
  /** Replicas in one cluster (standbys not counted). */
  replicaCountMax: 6,

  // Peer input (issue 14): the numbers a replica accepts from a peer, so that nothing a peer
  // sends can move it to a view or op it could not encode, persist or increment again.
  /** The largest view anything holds: the wire, a prepare header and the superblock (u32). */
  viewMax: 0xffff_ffff,
  /** View changes of room a replica keeps above the highest view a peer may name. */
  viewHeadroomCount: 2 ** 24,
  /** The largest op or commit number anything holds: a u64 that is a safe integer. */
  opMax: Number.MAX_SAFE_INTEGER,
  /** Ops of room kept above the highest op a peer may name (op + pipeline, anchor + suffix). */
  opHeadroomCount: 2 ** 32,
  /**
   * A replica whose view is healthy follows a silent peer into a later view at most once per
   * this many election timeouts (vsr/view_follow.ts): a peer that forges view changes in the
   * name of a replica that is down costs at most one view change per interval.
   */
  viewFollowIntervalElectionTimeouts: 8,

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

  // The client port after the handshake (src/net/client_port.ts, src/node/session_admission.ts):
  // the defaults of its [server] keys and the bounds that have no key.
  /** A new connection must send its first frame (client or replica hello) within this. */
  connectionHandshakeTimeoutMs: 10_000,
  /** Connections accepted that have not sent their first frame yet; more are refused. */
  connectionHandshakeCountMax: 1024,
  /** Refused connections still being answered; past it a refused socket is just destroyed. */
  connectionRefusingCountMax: 256,
  /** Default of [server] idle_timeout_ms: a client connection with no complete frame for this. */
  connectionIdleTimeoutMsDefault: 5 * 60_000,
  /** Default of [server] frame_timeout_ms: a frame started must be complete within this. */
  connectionFrameTimeoutMsDefault: 30_000,
  /** Default of [server] frame_buffer_budget_bytes: incomplete frames of all connections. */
  frameBufferBudgetBytesDefault: 256 * MiB,
  /** What one received chunk costs besides its bytes (a Buffer object and a backing store). */
  frameChunkOverheadBytes: 256,
  /** Default of [server] sessions_per_connection_max (an SDK client opens at most 256). */
  connectionSessionCountMaxDefault: 1024,
  /** Defaults of [server] session_registrations_per_second and session_registration_burst. */
  sessionRegisterRatePerSecondDefault: 100,
  sessionRegisterBurstDefault: 256,

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

  // A full disk (src/node/disk_space.ts, the journal's and the superblock's write paths).
  /**
   * Default of [storage] disk_free_bytes_min: below this much free space on the data
   * directory's filesystem, writes are refused at admission. Room for a few seconds of writes
   * at full speed, the next segment's first chunks, and an operator's tools.
   */
  diskFreeBytesMinDefault: 256 * MiB,
  /** The largest [storage] disk_free_bytes_min accepted (1 TiB). */
  diskFreeBytesMinMax: 1024 * 1024 * MiB,
  /** How often the free space of the data directory's filesystem is measured. */
  diskSpaceCheckIntervalMs: 1000,
  /** How often a journal or superblock write stopped by a full disk is tried again. */
  diskFullRetryIntervalMs: 500,
  /**
   * Prepares a replica whose journal waits for space keeps queued; prepare and repair messages
   * arriving beyond it are dropped, as a lossy network would, and repaired once space returns.
   */
  diskFullJournalPendingCountMax: 64,

  // The ops HTTP port (/health/*, /metrics, /status, /debug/*): the defaults of its [telemetry]
  // keys and the largest values they accept (ops_server.ts, ops_connections.ts).
  /** Ops connections open at once; at the cap one with no request in progress is shed. */
  opsConnectionCountDefault: 64,
  opsConnectionCountMax: 1024,
  /** A request's headers must arrive within this (defeats slowloris; idle sockets included). */
  opsHeadersTimeoutMsDefault: 10_000,
  /** A whole request (headers and body) must arrive within this. */
  opsRequestTimeoutMsDefault: 10_000,
  /** An idle keep-alive connection is closed after this (Prometheus scrapes every 15 s). */
  opsKeepAliveTimeoutMsDefault: 30_000,
  opsTimeoutMsMin: 1000,
  opsTimeoutMsMax: 300_000,
} as const;
