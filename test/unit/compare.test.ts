// Names are ordered without ICU: String#localeCompare loads ICU's collation
// data into the agent (~3 MiB resident, docs/footprint.md). compareText must
// order RFC 1123 labels (component, override names) exactly as
// localeCompare did, so no plan's stage order changes with it.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { compareText } from '../../src/lib/compare.ts';

const label = fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?$/);

describe('compareText', () => {
  it('orders RFC 1123 labels as localeCompare does', () => {
    fc.assert(
      fc.property(label, label, (a, b) => Math.sign(compareText(a, b)) === Math.sign(a.localeCompare(b))),
      { numRuns: 20_000 },
    );
  });

  it('is a total order in code units, equal only for equal strings', () => {
    assert.deepEqual(['b', 'a-b', 'a', 'a0', 'ab', '0'].sort(compareText), ['0', 'a', 'a-b', 'a0', 'ab', 'b']);
    assert.equal(compareText('x', 'x'), 0);
    assert.equal(compareText('B', 'a'), -1, 'code units, not locale: upper case sorts first');
  });

  it("the agent's code sorts with it, never with localeCompare", () => {
    const root = new URL('../../src/', import.meta.url).pathname;
    const offenders = ['agent', 'store', 'protocol', 'hub-link', 'lib']
      .flatMap((dir) => readdirSync(join(root, dir), { recursive: true, encoding: 'utf8' }).map((f) => join(dir, f)))
      .filter((f) => f.endsWith('.ts') && /\.localeCompare\(/.test(readFileSync(join(root, f), 'utf8')));
    assert.deepEqual(offenders, []);
  });
});
