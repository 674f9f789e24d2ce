// Superseding an agent's connections: ordered by the connection epoch each
// committed hello took (ClusterRepo.recordHello), never by the order in which
// welcomes or other replicas' hello events arrive.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SessionRegistry, type LiveSession } from '../../src/hub/session-registry.ts';

function session(name: string): LiveSession & { name: string; closed: number } {
  const s = {
    name,
    closed: 0,
    deliver() {},
    close() {
      s.closed++;
    },
  };
  return s;
}

describe('session registry: superseding by connection epoch', () => {
  it('a newer connection replaces an older one on the same replica', () => {
    const r = new SessionRegistry();
    const old = session('old');
    const newer = session('new');
    assert.equal(r.attachAgent('edge-1', old, 1), undefined);
    assert.equal(r.attachAgent('edge-1', newer, 2), old, 'the older connection is the one to close');
    assert.equal(r.agent('edge-1'), newer);
  });

  it('a late welcome of an older connection does not replace the newer one: it is the one to close', () => {
    const r = new SessionRegistry();
    const newer = session('new');
    const old = session('old');
    r.attachAgent('edge-1', newer, 5);
    assert.equal(r.attachAgent('edge-1', old, 4), old);
    assert.equal(r.agent('edge-1'), newer);
  });

  it('a late or replayed hello event of an older connection on another replica leaves the newer one here', () => {
    const r = new SessionRegistry();
    const here = session('here');
    r.attachAgent('edge-1', here, 7);
    assert.equal(r.supersede('edge-1', 6), undefined, 'older epoch from elsewhere');
    assert.equal(r.supersede('edge-1', 7), undefined, 'the same connection’s own event');
    assert.equal(r.agent('edge-1'), here);
    assert.equal(r.supersede('edge-1', 8), here, 'a newer connection elsewhere ends this one');
  });

  it('a newer connection elsewhere heard of before an older one is welcomed here: the older one is refused', () => {
    const r = new SessionRegistry();
    assert.equal(r.supersede('edge-1', 9), undefined);
    const old = session('old');
    assert.equal(r.attachAgent('edge-1', old, 8), old);
    assert.equal(r.agent('edge-1'), undefined);
    const newest = session('newest');
    assert.equal(r.attachAgent('edge-1', newest, 10), undefined);
    assert.equal(r.agent('edge-1'), newest);
  });

  it('an event without an epoch (a replica that predates them) supersedes as before', () => {
    const r = new SessionRegistry();
    const here = session('here');
    r.attachAgent('edge-1', here, 3);
    assert.equal(r.supersede('edge-1', undefined), here);
  });
});
