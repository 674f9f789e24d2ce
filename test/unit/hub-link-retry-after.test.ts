// A hub that says how long it will refuse an agent (Retry-After on a 429/503
// upgrade, retryAfterMs in an error frame) is not asked again before then:
// each early attempt would only be refused, and against a ban it is another
// offence. Without such a hint the link keeps its own (here very short) backoff.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocketServer } from 'ws';
import { AGENT_PATH, closeCodes, PROTOCOL_VERSION } from '../../src/protocol/messages.ts';
import { generateReleaseKey } from '../../src/protocol/signing.ts';
import { createTestAgent, type TestAgent } from '../support/test-agent.ts';

/** A hub stand-in that refuses every upgrade with `status` and, when given, `retry-after`; records when each attempt came. */
async function refusingServer(status: number, retryAfter: string | undefined): Promise<{ server: Server; url: string; attempts: number[] }> {
  const attempts: number[] = [];
  const server = createServer((_req, res) => res.writeHead(404).end());
  server.on('upgrade', (_req, socket) => {
    attempts.push(performance.now());
    const header = retryAfter === undefined ? '' : `retry-after: ${retryAfter}\r\n`;
    socket.end(`HTTP/1.1 ${status} Refused\r\ncontent-length: 0\r\n${header}connection: close\r\n\r\n`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}${AGENT_PATH}`, attempts };
}

describe('hub link: the hub\'s retry-after', () => {
  const agents: TestAgent[] = [];
  const servers: { close: (cb: () => void) => unknown }[] = [];
  afterEach(async () => {
    await Promise.all(agents.splice(0).map((a) => a.link.stop()));
    await Promise.all(servers.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  });

  function agentFor(url: string): TestAgent {
    const agent = createTestAgent({ url, clusterId: 'edge-refused', releaseKey: generateReleaseKey().publicKey, now: () => new Date(), bootstrapToken: 'token', link: { backoff: { baseMs: 10, capMs: 20 } } });
    agents.push(agent);
    agent.link.start();
    return agent;
  }

  for (const status of [429, 503]) {
    it(`a ${status} with Retry-After: 2 is not retried for 2 s; one without is retried at the link's own pace`, async () => {
      const told = await refusingServer(status, '2');
      const untold = await refusingServer(status, undefined);
      servers.push(told.server, untold.server);
      agentFor(told.url);
      agentFor(untold.url);
      while (told.attempts.length < 2) await sleep(50);
      const [first, second] = told.attempts as [number, number];
      // 2 s, plus at most a fifth more of jitter (the test agent's random is 0.5: 200 ms).
      assert.ok(second - first >= 2_000, `the second attempt came ${Math.round(second - first)} ms after the first refusal`);
      assert.ok(untold.attempts.length > 5, `without Retry-After the link tried ${untold.attempts.length} times meanwhile`);
    });
  }

  it('an HTTP-date Retry-After counts from now', async () => {
    const told = await refusingServer(429, new Date(Date.now() + 3_000).toUTCString());
    servers.push(told.server);
    agentFor(told.url);
    while (told.attempts.length < 2) await sleep(50);
    const [first, second] = told.attempts as [number, number];
    // The date has a one-second resolution: at least 2 s are left of the 3 s when the first refusal arrives.
    assert.ok(second - first >= 1_900, `the second attempt came ${Math.round(second - first)} ms after the first refusal`);
  });

  it('an error frame\'s retryAfterMs (a banned cluster, after its proof) is obeyed too', async () => {
    const attempts: number[] = [];
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
    servers.push(wss);
    wss.on('connection', (ws) => {
      attempts.push(performance.now());
      ws.send(JSON.stringify({ type: 'error', protocolVersion: PROTOCOL_VERSION, code: 'Banned', message: 'cut off: retry in 2 s', retryAfterMs: 1_500 }));
      ws.close(closeCodes.throttled, 'Banned');
    });
    agentFor(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}${AGENT_PATH}`);
    while (attempts.length < 2) await sleep(50);
    const [first, second] = attempts as [number, number];
    assert.ok(second - first >= 1_500, `the second attempt came ${Math.round(second - first)} ms after the ban`);
  });
});
