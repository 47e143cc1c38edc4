// The body of a prepare: a batch of client requests, in the order the primary received them.
// This is journal format: every replica decodes the same bytes into the same requests.
//
// Layout: u32 count, then per request: client id [16], request number u64, operation u8,
// body (u32 length + bytes). Decoding is bounded and throws DecodeError on malformed input.

import { DecodeError, Reader, Writer } from '../core/binary.js';
import { clientIdFromBytes } from '../core/checksum.js';
import { constants } from '../core/constants.js';
import { asRequestNumber } from '../core/types.js';
import type { ClientId, RequestNumber } from '../core/types.js';

export type Operation = 'register' | 'command';

export interface Request {
  readonly clientId: ClientId;
  readonly requestNumber: RequestNumber;
  readonly operation: Operation;
  /** An encoded kernel command for `command`; empty for `register`. */
  readonly body: Uint8Array;
}

const operationCode = { register: 1, command: 2 } as const;
const clientIdSizeBytes = 16;
/** Bytes a request adds to a batch beyond its body. */
export const requestOverheadBytes = clientIdSizeBytes + 8 + 1 + 4;

export function encodeBatch(requests: readonly Request[]): Uint8Array {
  let sizeBytes = 4;
  for (const request of requests) sizeBytes += requestOverheadBytes + request.body.length;
  const writer = new Writer(sizeBytes);
  writer.u32(requests.length);
  for (const request of requests) {
    writer.hexFixed(request.clientId, clientIdSizeBytes);
    writer.u64(request.requestNumber).u8(operationCode[request.operation]);
    writer.bytesField(request.body);
  }
  return writer.finish();
}

export function decodeBatch(body: Uint8Array): Request[] {
  const reader = new Reader(body);
  const count = reader.u32();
  if (count > constants.prepareRequestCountMax) {
    throw new DecodeError(`batch of ${count} requests exceeds ${constants.prepareRequestCountMax}`);
  }
  const requests: Request[] = [];
  for (let i = 0; i < count; i++) {
    const clientId = clientIdFromBytes(reader.fixed(clientIdSizeBytes));
    const requestNumber = asRequestNumber(reader.u64());
    const code = reader.u8();
    let operation: Operation;
    if (code === operationCode.register) operation = 'register';
    else if (code === operationCode.command) operation = 'command';
    else throw new DecodeError(`unknown operation ${code}`);
    const requestBody = reader.bytesField(constants.requestBodySizeBytesMax);
    requests.push({ clientId, requestNumber, operation, body: requestBody });
  }
  reader.end();
  return requests;
}
