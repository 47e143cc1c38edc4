// Proves that newClientId makes ids the wire and the journal accept: exactly 16 bytes as 32
// lower-case hex digits (asClientId's own check), and a fresh one on every call.

import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { clientIdFromBytes, fromHex } from '../core/checksum.js';
import { clientIdSizeBytes, newClientId } from './client_id.js';

describe('newClientId', () => {
  it('makes 16-byte ids in lower-case hex that round-trip through their bytes', () => {
    const id = newClientId();
    assert.match(id, /^[0-9a-f]{32}$/);
    assert.equal(fromHex(id).length, clientIdSizeBytes);
    assert.equal(clientIdFromBytes(fromHex(id)), id);
  });

  it('makes a different id each time', () => {
    const ids = new Set(Array.from({ length: 64 }, () => newClientId()));
    assert.equal(ids.size, 64);
  });
});
