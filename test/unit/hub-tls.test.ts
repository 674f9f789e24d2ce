// TLS in production: the hub serves wss:// and https:// with its certificate,
// and the hub link connects only when it trusts the certificate's CA.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ADMIN_TOKEN, startHubFixture } from '../support/hub-fixture.ts';
import { createTestAgent } from '../support/test-agent.ts';
import { nextEvent } from '../support/events.ts';

function selfSignedCert(): { key: string; cert: string } {
  const dir = mkdtempSync(join(tmpdir(), 'fleetlet-tls-'));
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '2',
    '-subj', '/CN=fleetlet-hub', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ], { stdio: 'ignore' });
  return { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert: readFileSync(join(dir, 'cert.pem'), 'utf8') };
}

function acceptOverHttps(url: string, ca: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', ca, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

test('an agent that trusts the hub\'s CA registers and is welcomed over wss://', async () => {
  const tls = selfSignedCert();
  const f = await startHubFixture({ tls });
  try {
    assert.match(f.hub.url, /^wss:\/\//);
    assert.match(f.hub.httpUrl, /^https:\/\//);
    const agent = createTestAgent({ url: f.hub.url, clusterId: 'tls-1', releaseKey: f.key.publicKey, now: f.clock.now, link: { tls: { ca: tls.cert } } });
    const pending = nextEvent(agent.link, 'registration', (r: { status: string }) => r.status === 'pending');
    agent.link.start();
    await pending;
    const welcomed = nextEvent(agent.link, 'welcome');
    assert.equal(await acceptOverHttps(`${f.hub.httpUrl}/api/v1/clusters/tls-1/accept`, tls.cert), 200);
    await welcomed;
    assert.equal(agent.state.registered, true, 'the acceptance arrived over TLS');
    await agent.link.stop();
  } finally {
    await f.close();
  }
});

test('an agent that does not trust the certificate never gets through', async () => {
  const tls = selfSignedCert();
  const f = await startHubFixture({ tls });
  try {
    const agent = createTestAgent({ url: f.hub.url, clusterId: 'tls-2', releaseKey: f.key.publicKey, now: f.clock.now });
    const failedTwice = new Promise<void>((resolve) => {
      let n = 0;
      agent.link.on('disconnected', () => {
        if (++n === 2) resolve();
      });
    });
    agent.link.start();
    await failedTwice;
    assert.equal(agent.link.counters.connects, 0, 'no TLS connection was ever established');
    const clusters = await new Promise<string>((resolve, reject) => {
      const req = request(`${f.hub.httpUrl}/api/v1/clusters`, { ca: tls.cert, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve(body));
      });
      req.on('error', reject);
      req.end();
    });
    assert.deepEqual(JSON.parse(clusters), { clusters: [] }, 'nothing registered');
    await agent.link.stop();
  } finally {
    await f.close();
  }
});
