// The dashboard client's rule for overlapping refetches of a view
// (web/src/latest-answer.ts): the newest answer wins, and a change arriving
// before the first answer does not throw that answer away.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LatestAnswer } from '../../web/src/latest-answer.ts';

describe('LatestAnswer', () => {
  it('a change before the first answer: the first answer still shows, then the newer one', () => {
    const l = new LatestAnswer();
    const first = l.issue('/api/overview');
    const second = l.issue('/api/overview'); // a live update arrived before the first answer
    assert.equal(l.accept('/api/overview', first), true, 'the first answer is shown, not dropped');
    assert.equal(l.accept('/api/overview', second), true, 'the newer answer replaces it');
  });

  it('an older answer arriving after a newer one is dropped', () => {
    const l = new LatestAnswer();
    const first = l.issue('/api/overview');
    const second = l.issue('/api/overview');
    assert.equal(l.accept('/api/overview', second), true);
    assert.equal(l.accept('/api/overview', first), false, 'stale: the newer answer stays');
  });

  it('answers keep landing under a steady stream of changes', () => {
    const l = new LatestAnswer();
    let shown = 0;
    const tickets = [l.issue('/a')];
    for (let i = 0; i < 5; i++) {
      tickets.push(l.issue('/a')); // each change comes before the previous answer
      if (l.accept('/a', tickets[i] as number)) shown++;
    }
    assert.equal(shown, 5, 'every answer in order shows');
  });

  it('answers for a path the view left are dropped', () => {
    const l = new LatestAnswer();
    const old = l.issue('/clusters/a');
    const now = l.issue('/clusters/b');
    assert.equal(l.accept('/clusters/a', old), false);
    assert.equal(l.accept('/clusters/b', now), true);
    const back = l.issue('/clusters/a');
    assert.equal(l.accept('/clusters/a', old), false, 'an answer from before leaving is not the current visit');
    assert.equal(l.accept('/clusters/a', back), true);
  });
});
