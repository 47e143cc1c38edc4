// Proves the name rules of names.ts, by property: newNameProblem() agrees with an independent
// model of the rules on strings drawn from an alphabet rich in the characters the rules are
// about (spaces, digits, dots, slashes, bidi controls, zero-width characters, BOM, controls,
// lone surrogates) and on arbitrary Unicode; it is total (answers any string, never throws);
// its code is LIMIT_EXCEEDED exactly when the name is over its bound in UTF-8 bytes; its
// message never carries an invisible or direction-changing character and stays short however
// long the name; and names people use (letters, digits, inner spaces, dots, dashes) pass.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { constants } from '../core/constants.js';
import { errorCodes } from '../core/errors.js';
import { newNameProblem, showName } from './names.js';
import type { NameKind } from './names.js';

const encoder = new TextEncoder();

function boundOf(kind: NameKind): number {
  return kind === 'tenant' ? constants.tenantNameBytesMax : constants.streamNameBytesMax;
}

function isWellFormed(value: string): boolean {
  try {
    encodeURIComponent(value);
    return true;
  } catch {
    return false;
  }
}

/** The rules, written again independently: true when a name must be accepted. */
function modelAccepts(value: string, kind: NameKind): boolean {
  const size = encoder.encode(value).length;
  if (size < 1 || size > boundOf(kind) || !isWellFormed(value)) return false;
  if (/\p{Cc}/u.test(value)) return false;
  if (value.trim() !== value || value.trim() === '') return false;
  if (/[\u061C\u200B-\u200F\u2028-\u202E\u2060-\u2064\u2066-\u2069\uFEFF]/.test(value)) {
    return false;
  }
  if (/[/\\]/.test(value) || value === '.' || value === '..') return false;
  return !/^[0-9]+$/.test(value);
}

const interesting = [
  ...'aZé 0123456789./\\-_',
  '\u00a0',
  '\u3000',
  '\t',
  '\u0000',
  '\u007f',
  '\u0085',
  '\u061c',
  '\u200b',
  '\u200d',
  '\u200e',
  '\u2028',
  '\u202a',
  '\u202e',
  '\u2060',
  '\u2066',
  '\u2069',
  '\ufeff',
  '\ud800',
  '\udc00',
  '\u{1F600}',
];
const interestingName = fc
  .array(fc.constantFrom(...interesting), { maxLength: 12 })
  .map((chars) => chars.join(''));
const kindArb = fc.constantFrom<NameKind>('tenant', 'stream');
const hidden = /[\u061C\u200B-\u200F\u2028-\u202E\u2060-\u2069\uFEFF\p{Cc}]/u;

describe('newNameProblem', () => {
  it('agrees with a model of the rules', () => {
    fc.assert(
      fc.property(
        fc.oneof(interestingName, fc.string({ unit: 'binary', maxLength: 24 })),
        kindArb,
        (value, kind) => {
          const problem = newNameProblem(value, kind);
          assert.equal(problem === null, modelAccepts(value, kind), JSON.stringify(value));
        },
      ),
      { numRuns: 5000 },
    );
  });

  it('is LIMIT_EXCEEDED exactly over the bound, and its message is short and visible', () => {
    const longName = fc
      .tuple(fc.string({ unit: 'binary', maxLength: 8 }), fc.integer({ min: 0, max: 300 }))
      .map(([unit, count]) => unit.repeat(count));
    fc.assert(
      fc.property(fc.oneof(longName, interestingName), kindArb, (value, kind) => {
        const problem = newNameProblem(value, kind);
        const over = encoder.encode(value).length > boundOf(kind);
        if (over) assert.equal(problem?.code, errorCodes.limit_exceeded);
        else if (problem !== null) assert.equal(problem.code, errorCodes.invalid_argument);
        if (problem === null) return;
        assert.ok(!hidden.test(problem.message), JSON.stringify(problem.message));
        assert.ok(problem.message.length < 300, problem.message);
      }),
      { numRuns: 2000 },
    );
  });

  it('accepts the names people use', () => {
    const word = fc.stringMatching(/^[A-Za-zÀ-ÿ][A-Za-zÀ-ÿ0-9 ._:@()-]{0,40}[A-Za-zÀ-ÿ0-9)]$/);
    fc.assert(
      fc.property(word, kindArb, (value, kind) => {
        assert.equal(newNameProblem(value, kind), null, JSON.stringify(value));
      }),
      { numRuns: 1000 },
    );
    for (const name of ['clinic', 'Clinic Nord-Ost 2', 'vitals.v2', '2024-admissions', 'ü', 'x']) {
      assert.equal(newNameProblem(name, 'stream'), null, name);
    }
  });

  it('refuses the names of issue 14 with a message naming the rule', () => {
    const cases: Array<[string, RegExp]> = [
      ['   ', /is blank/],
      ['../../etc/passwd', /path separator/],
      ['abc\u202Etxt', /U\+202E/],
      ['\uFEFFname', /U\+FEFF/],
      ['1', /all digits/],
      ['..', /a path/],
      [' lead', /whitespace/],
    ];
    for (const [name, rule] of cases) {
      const problem = newNameProblem(name, 'tenant');
      assert.equal(problem?.code, errorCodes.invalid_argument, name);
      assert.match(problem.message, /^tenant name "/);
      assert.match(problem.message, rule);
    }
  });

  it('shows a name escaped and cut', () => {
    assert.equal(showName('a\u202Eb"\\'), '"a\\u202eb\\"\\\\"');
    assert.equal(showName('x'.repeat(100)), `"${'x'.repeat(64)}…"`);
    assert.equal(showName('\u{10FFFF}'), '"\\u{10ffff}"');
  });
});
