// The one root error at the edges (HOUSE_RULES §6). Each KmbError carries a stable code that
// programs match on, a message a person can act on, and an optional cause. Whether an error may
// be retried is a property of its code, never of its message text.

export const errorCodes = {
  // Client input and requests.
  invalid_argument: 'KMB_ERR_INVALID_ARGUMENT',
  tenant_not_found: 'KMB_ERR_TENANT_NOT_FOUND',
  tenant_exists: 'KMB_ERR_TENANT_EXISTS',
  tenant_sealed: 'KMB_ERR_TENANT_SEALED',
  stream_not_found: 'KMB_ERR_STREAM_NOT_FOUND',
  stream_exists: 'KMB_ERR_STREAM_EXISTS',
  offset_mismatch: 'KMB_ERR_OFFSET_MISMATCH',
  offset_out_of_range: 'KMB_ERR_OFFSET_OUT_OF_RANGE',
  limit_exceeded: 'KMB_ERR_LIMIT_EXCEEDED',
  // Sessions.
  session_not_registered: 'KMB_ERR_SESSION_NOT_REGISTERED',
  session_evicted: 'KMB_ERR_SESSION_EVICTED',
  request_stale: 'KMB_ERR_REQUEST_STALE',
  request_gap: 'KMB_ERR_REQUEST_GAP',
  // Wire.
  frame_malformed: 'KMB_ERR_FRAME_MALFORMED',
  frame_too_large: 'KMB_ERR_FRAME_TOO_LARGE',
  frame_checksum: 'KMB_ERR_FRAME_CHECKSUM',
  protocol_version: 'KMB_ERR_PROTOCOL_VERSION',
  cluster_mismatch: 'KMB_ERR_CLUSTER_MISMATCH',
  // Availability.
  not_leader: 'KMB_ERR_NOT_LEADER',
  not_ready: 'KMB_ERR_NOT_READY',
  backpressure: 'KMB_ERR_BACKPRESSURE',
  shutting_down: 'KMB_ERR_SHUTTING_DOWN',
  connection_lost: 'KMB_ERR_CONNECTION_LOST',
  timeout: 'KMB_ERR_TIMEOUT',
  // Storage and configuration.
  storage_corrupt: 'KMB_ERR_STORAGE_CORRUPT',
  storage_io: 'KMB_ERR_STORAGE_IO',
  /**
   * The data directory's disk is full: writes are refused until space returns, reads go on.
   * Not retryable: it lasts until an operator frees space, and a client that retried on its own
   * would only wait out its deadline and hide the cause. A refused request never entered the
   * log, so sending it again later with the same request number is safe.
   */
  storage_full: 'KMB_ERR_STORAGE_FULL',
  config_invalid: 'KMB_ERR_CONFIG_INVALID',
  // The ops HTTP endpoint (/metrics, /status, /debug/*).
  not_found: 'KMB_ERR_NOT_FOUND',
  method_not_allowed: 'KMB_ERR_METHOD_NOT_ALLOWED',
  profile_busy: 'KMB_ERR_PROFILE_BUSY',
  /** A /debug/* path asked from an address [telemetry] debug_endpoints does not admit. */
  forbidden: 'KMB_ERR_FORBIDDEN',
  internal: 'KMB_ERR_INTERNAL',
} as const;

export type ErrorName = keyof typeof errorCodes;
export type ErrorCode = (typeof errorCodes)[ErrorName];

const retryableCodes: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  errorCodes.not_leader,
  errorCodes.not_ready,
  errorCodes.backpressure,
  errorCodes.shutting_down,
  errorCodes.connection_lost,
  errorCodes.timeout,
  errorCodes.profile_busy,
]);

const codeSet: ReadonlySet<string> = new Set(Object.values(errorCodes));

export function isErrorCode(value: string): value is ErrorCode {
  return codeSet.has(value);
}

export function isRetryableCode(code: ErrorCode): boolean {
  return retryableCodes.has(code);
}

export class KmbError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KmbError';
    this.code = code;
  }

  get retryable(): boolean {
    return isRetryableCode(this.code);
  }

  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

export function kmbError(name: ErrorName, message: string, cause?: unknown): KmbError {
  return new KmbError(errorCodes[name], message, cause === undefined ? undefined : { cause });
}
