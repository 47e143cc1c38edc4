// Proves the executor's session rules on their own, with a counting state machine: a register
// creates a session (a second one is skipped), a register past the bound evicts the session
// that committed least recently, a command applies only as its session's next request (no
// session, a gap and a duplicate are skipped, without touching the state machine), and the
// no_duplicate_detection canary applies a duplicate again without moving the session.

import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { asClientId, asOp, asRequestNumber, asTimestampUs } from '../core/types.js';
import type { ClientId } from '../core/types.js';
import type { Request } from './batch.js';
import { ClientTable } from './client_table.js';
import { executeRequest } from './executor.js';
import type { StateMachine } from './replica_options.js';

function counter(): StateMachine<number> & { count: number } {
  const machine = {
    count: 0,
    apply: () => {
      machine.count += 1;
      return { result: new Uint8Array([machine.count]), output: machine.count };
    },
  };
  return machine;
}

function request(clientId: ClientId, n: number): Request {
  const operation = n === 0 ? 'register' : 'command';
  return { clientId, requestNumber: asRequestNumber(n), operation, body: new Uint8Array(0) };
}

const site = (op: number) => ({ op: asOp(op), timestampUs: asTimestampUs(op), requestIndex: 0 });

describe('executor', () => {
  it('registers, applies in order, skips the rest and evicts the oldest', () => {
    const table = new ClientTable(2);
    const machine = counter();
    const [a, b, c] = ['a', 'b', 'c'].map((id) => asClientId(id.repeat(32)));
    assert.ok(a !== undefined && b !== undefined && c !== undefined);
    assert.equal(executeRequest(table, machine, site(1), request(a, 0)).kind, 'registered');
    const again = executeRequest(table, machine, site(2), request(a, 0));
    assert.deepEqual(again, { kind: 'skipped', reason: 'registered_already' });
    assert.equal(executeRequest(table, machine, site(3), request(a, 1)).kind, 'applied');
    assert.deepEqual(executeRequest(table, machine, site(4), request(a, 1)), {
      kind: 'skipped',
      reason: 'duplicate',
    });
    assert.deepEqual(executeRequest(table, machine, site(5), request(a, 3)), {
      kind: 'skipped',
      reason: 'gap',
    });
    assert.deepEqual(executeRequest(table, machine, site(6), request(b, 1)), {
      kind: 'skipped',
      reason: 'no_session',
    });
    assert.equal(machine.count, 1, 'skipped requests never reach the state machine');
    executeRequest(table, machine, site(7), request(b, 0));
    executeRequest(table, machine, site(8), request(b, 1));
    // a committed last at op 3, b at op 8: registering c evicts a.
    const evicting = executeRequest(table, machine, site(9), request(c, 0));
    assert.equal(evicting.kind === 'registered' ? evicting.evicted : null, a);
    assert.equal(table.get(a), undefined);
    assert.equal(table.size, 2);
  });

  it('applies a duplicate again only under the no_duplicate_detection canary', () => {
    const table = new ClientTable(4);
    const machine = counter();
    const a = asClientId('a'.repeat(32));
    executeRequest(table, machine, site(1), request(a, 0));
    executeRequest(table, machine, site(2), request(a, 1));
    const options = { applyDuplicates: true };
    const duplicate = executeRequest(table, machine, site(3), request(a, 1), options);
    assert.equal(duplicate.kind, 'applied');
    assert.equal(machine.count, 2);
    assert.equal(table.get(a)?.requestNumber, 1, 'the session does not move');
  });
});
