// Proves that address parsing accepts host:port, [v6]:port and comma-separated lists of them,
// and rejects anything else with KMB_ERR_INVALID_ARGUMENT (never an assertion).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KmbError } from '../core/errors.js';
import { formatAddress, parseAddress, parseAddressList } from './address.js';

describe('addresses', () => {
  it('parses host:port lists', () => {
    assert.deepEqual(parseAddressList('a:1, b.example:7001,,[::1]:9'), [
      { host: 'a', port: 1 },
      { host: 'b.example', port: 7001 },
      { host: '::1', port: 9 },
    ]);
    assert.equal(formatAddress(parseAddress('[::1]:9')), '[::1]:9');
  });

  it('rejects bad addresses', () => {
    for (const bad of ['a', 'a:0', 'a:65536', ':1', 'a:b', '::1:9', '']) {
      assert.throws(
        () => parseAddressList(bad),
        (error: unknown) => error instanceof KmbError && error.code === 'KMB_ERR_INVALID_ARGUMENT',
        bad,
      );
    }
  });
});
