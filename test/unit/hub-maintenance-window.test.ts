// An agent's next maintenance window from its hub link to the hub's store:
// sent with the heartbeat that follows the welcome and again only when it
// changes; an agent that predates the field sends none and the hub keeps null.
import assert from 'node:assert/strict';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import type { MaintenanceWindow } from '../../src/protocol/messages.ts';
import { startHubFixture, type HubFixture } from '../support/hub-fixture.ts';
import { enrolAgent, type TestAgent } from '../support/test-agent.ts';

async function eventually<T>(what: string, probe: () => T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('the maintenance window an agent reports', () => {
  let f: HubFixture;
  const agents: TestAgent[] = [];
  /** Heartbeat frames the agents sent, by cluster id (read from what hub links write on their sockets). */
  const heartbeats: Record<string, unknown>[] = [];
  const send = WebSocket.prototype.send;
  before(async () => {
    f = await startHubFixture();
    WebSocket.prototype.send = function (this: WebSocket, data: unknown, ...rest: unknown[]) {
      if (typeof data === 'string' && data.includes('"type":"heartbeat"')) heartbeats.push(JSON.parse(data) as Record<string, unknown>);
      return (send as (...a: unknown[]) => void).call(this, data, ...rest);
    } as typeof send;
  });
  after(async () => {
    WebSocket.prototype.send = send;
    for (const a of agents) await a.link.stop();
    await f.close();
  });
  const stored = (id: string): string | null | undefined => {
    const db = new DatabaseSync(f.dbPath, { readOnly: true });
    try {
      return (db.prepare('SELECT maintenance_window AS w FROM clusters WHERE id = ?').get(id) as { w: string | null } | undefined)?.w;
    } finally {
      db.close();
    }
  };

  it('reaches the hub after the welcome, is re-sent only on change, and the hub stores the latest', async () => {
    let window: MaintenanceWindow = { open: false, opensAt: '2030-01-03T02:00:00.000Z', closesAt: null };
    const a = await enrolAgent(f, 'edge-window', { link: { maintenanceWindow: () => window, heartbeatMs: 100 } });
    agents.push(a);
    await eventually('the first window stored', () => (stored('edge-window') === JSON.stringify(window) ? true : undefined));
    const withWindow = () => heartbeats.filter((h) => h.maintenanceWindow !== undefined);
    // Several heartbeats later, still only the one that carried it.
    await eventually('more heartbeats', () => (heartbeats.length >= withWindow().length + 3 ? true : undefined));
    assert.equal(withWindow().length, 1, 'an unchanged window is not sent again');

    window = { open: true, opensAt: null, closesAt: '2030-01-03T04:00:00.000Z' };
    await eventually('the changed window stored', () => (stored('edge-window') === JSON.stringify(window) ? true : undefined));
    assert.deepEqual(withWindow().map((h) => h.maintenanceWindow), [{ open: false, opensAt: '2030-01-03T02:00:00.000Z', closesAt: null }, window]);
  });

  it('an agent that does not send it: heartbeats without the field, the hub keeps null', async () => {
    await agents[0]?.link.stop(); // only the older agent's heartbeats from here on
    const before = heartbeats.length;
    const a = await enrolAgent(f, 'edge-older', { link: { heartbeatMs: 100 } });
    agents.push(a);
    await eventually('heartbeats from it', () => (heartbeats.length >= before + 4 ? true : undefined));
    assert.ok(heartbeats.slice(before).every((h) => !('maintenanceWindow' in h)));
    assert.equal(stored('edge-older'), null);
  });
});
