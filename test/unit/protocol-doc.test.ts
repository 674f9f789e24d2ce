// docs/protocol.md against the code: every message type, report kind and
// close code is described; every example message parses as the receiving
// side parses it; the envelope is what signRelease makes; the release example
// validates, signs, and travels through a real hub to a real hub link.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import YAML from 'yaml';
import { closeCodes } from '../../src/protocol/messages.ts';
import { agentMessageSchemas, hubMessageSchemas, parseMessage } from '../../src/protocol/messages.ts';
import { release, type ReleaseInput } from '../../src/protocol/release.ts';
import { reportKinds } from '../../src/protocol/reports.ts';
import { generateReleaseKey, keyIdOf, signRelease, verifyRelease } from '../../src/protocol/signing.ts';
import { docBlocks, readDoc } from '../support/doc-blocks.ts';
import { startHubFixture, type HubFixture } from '../support/hub-fixture.ts';
import { enrolAgent, type TestAgent } from '../support/test-agent.ts';

const doc = readDoc('protocol.md');
const blocks = (marker: string, lang: string): string[] => docBlocks(doc, marker, lang);

/** The release example of the page, as written. */
function docRelease(): ReleaseInput {
  const [yaml] = blocks('release', 'yaml');
  if (yaml === undefined) throw new Error('docs/protocol.md has no <!-- release --> block');
  return YAML.parse(yaml) as ReleaseInput;
}

describe('docs/protocol.md', () => {
  it('describes every message type, report kind and close code', () => {
    for (const type of [...Object.keys(agentMessageSchemas), ...Object.keys(hubMessageSchemas)]) assert.ok(doc.includes(`#### \`${type}\`\n`), `message "${type}" has a section`);
    for (const kind of [...reportKinds, 'override-refused']) assert.ok(doc.includes(`| \`${kind}\` |`), `report kind "${kind}" is in the table`);
    for (const [name, code] of Object.entries(closeCodes)) assert.match(doc, new RegExp(`^\\| ${code} \\| hub \\|`, 'm'), `close code ${name} (${code})`);
  });

  it('every example message parses as its receiver parses it', () => {
    let n = 0;
    for (const direction of ['from-agent', 'from-hub'] as const) {
      for (const text of blocks(`message: ${direction}`, 'json')) {
        const r = parseMessage(JSON.stringify(JSON.parse(text)), direction);
        assert.ok(r.ok, `${text}\n${r.ok ? '' : r.error.message}`);
        n++;
      }
    }
    assert.equal(n, Object.keys(agentMessageSchemas).length + Object.keys(hubMessageSchemas).length, 'one example per message type');
  });

  it('the envelope is what signRelease makes, its keyId the first 16 hex digits of the SHA-256 of the public key', () => {
    const key = generateReleaseKey();
    const envelope = signRelease(docRelease(), key.privateKey);
    assert.deepEqual(Object.keys(envelope).sort(), ['keyId', 'payload', 'signature']);
    assert.equal(envelope.keyId, createHash('sha256').update(key.publicKey.export({ type: 'spki', format: 'der' })).digest('hex').slice(0, 16));
    assert.equal(envelope.keyId, keyIdOf(key.publicKey));
    assert.match(envelope.signature, /^[A-Za-z0-9+/]+={0,2}$/);
    assert.deepEqual(JSON.parse(envelope.payload), release.parse(docRelease()), 'the payload is the release as JSON text');
    const verified = verifyRelease(envelope, key.publicKey, { now: () => new Date('2030-01-02T00:00:00Z'), lastRevision: 0 });
    assert.deepEqual([verified.name, verified.version, verified.components.map((c) => c.name)], ['edge-addons', '1.1.0', ['dns']]);
    assert.throws(() => verifyRelease(envelope, key.publicKey, { now: () => new Date('2030-01-02T00:00:00Z'), lastRevision: 1 }), /not newer/);
  });

  describe('the release example through a real hub', () => {
    let f: HubFixture;
    let agent: TestAgent | undefined;
    before(async () => {
      f = await startHubFixture();
    });
    after(async () => {
      await agent?.link.stop();
      await f.close();
    });

    it('an operator sets it, the hub signs and sends it as a release message, the agent verifies it', async () => {
      agent = await enrolAgent(f, 'edge-doc');
      const a = agent;
      const { apiVersion: _a, kind: _k, revision: _r, issuedAt: _i, expiresAt: _e, ...request } = docRelease();
      const put = await f.api('PUT', '/api/v1/clusters/edge-doc/release', request);
      assert.equal(put.status, 200, JSON.stringify(put.body));
      const deadline = Date.now() + 5000;
      while (a.releases.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const got = a.releases[0];
      assert.ok(got, 'the agent received a verified release');
      assert.deepEqual({ ...got, revision: 1, issuedAt: '', expiresAt: '' }, { ...release.parse(docRelease()), revision: 1, issuedAt: '', expiresAt: '' });
    });
  });
});
