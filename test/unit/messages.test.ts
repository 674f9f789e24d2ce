import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  encodeMessage,
  MAX_FRAME_BYTES,
  parseMessage,
  PROTOCOL_VERSION,
  ProtocolError,
  type ProtocolErrorReason,
} from '../../src/protocol/messages.ts';
import { parseReport } from '../../src/protocol/reports.ts';

const hello = {
  type: 'hello',
  protocolVersion: PROTOCOL_VERSION,
  clusterId: 'edge-1',
  agentVersion: '0.1.0',
  inventory: { components: [{ name: 'metrics', version: '0.9.1' }], kubernetesVersion: 'v1.35.4', targetInfrastructure: 'aws', overrides: [] },
  lastRevision: 0,
  outbox: { firstSeq: 1, lastSeq: 3 },
};

function rejection(raw: Buffer | string, direction?: 'from-agent' | 'from-hub'): ProtocolError {
  const r = direction ? parseMessage(raw, direction as 'from-agent') : parseMessage(raw);
  assert.equal(r.ok, false, 'expected a rejection');
  if (r.ok) throw new Error('unreachable');
  assert.ok(r.error instanceof ProtocolError);
  return r.error;
}

function reasonOf(raw: Buffer | string, direction?: 'from-agent' | 'from-hub'): ProtocolErrorReason {
  return rejection(raw, direction).reason;
}

describe('parseMessage', () => {
  it('parses a hello from a Buffer and from a string', () => {
    for (const raw of [JSON.stringify(hello), Buffer.from(JSON.stringify(hello))]) {
      const r = parseMessage(raw, 'from-agent');
      assert.ok(r.ok);
      assert.equal(r.message.type, 'hello');
    }
  });

  it('round-trips what encodeMessage writes, stamped with this protocol version', () => {
    const text = encodeMessage({ type: 'ack', uptoSeq: 7 });
    const r = parseMessage(text, 'from-hub');
    assert.ok(r.ok);
    assert.deepEqual(r.message, { type: 'ack', protocolVersion: PROTOCOL_VERSION, uptoSeq: 7 });
  });

  it('talks to a peer one version newer and drops fields it does not know', () => {
    const r = parseMessage(JSON.stringify({ ...hello, protocolVersion: PROTOCOL_VERSION + 1, shinyNewField: { x: 1 } }), 'from-agent');
    assert.ok(r.ok);
    assert.equal('shinyNewField' in r.message, false);
  });

  it('refuses versions more than one apart, naming both sides', () => {
    const e = rejection(JSON.stringify({ ...hello, protocolVersion: PROTOCOL_VERSION + 2 }));
    assert.equal(e.reason, 'UnsupportedVersion');
    assert.match(e.message, /upgrade the older side/);
    assert.equal(reasonOf(JSON.stringify({ ...hello, protocolVersion: 0 })), 'UnsupportedVersion');
    assert.equal(reasonOf(JSON.stringify({ ...hello, protocolVersion: 1.5 })), 'InvalidMessage');
    assert.equal(reasonOf(JSON.stringify({ ...hello, protocolVersion: undefined })), 'InvalidMessage');
  });

  it('refuses oversized frames before decoding them', () => {
    assert.equal(reasonOf(Buffer.alloc(MAX_FRAME_BYTES + 1, 0x20)), 'FrameTooLarge');
  });

  it('refuses frames that are not JSON, not UTF-8, or not an object', () => {
    assert.equal(reasonOf('{"type":'), 'NotJson');
    assert.equal(reasonOf(Buffer.from([0x7b, 0xff, 0xfe, 0x7d])), 'NotJson');
    assert.equal(reasonOf('[1,2]'), 'InvalidMessage');
    assert.equal(reasonOf('null'), 'InvalidMessage');
    assert.equal(reasonOf('"hello"'), 'InvalidMessage');
    // Refused by their first or last character, before any parse: the message says why without quoting the frame.
    assert.equal(reasonOf(''), 'NotJson');
    assert.equal(reasonOf('<html>'), 'NotJson');
    assert.match(rejection(' {"type":"reports","secret":"abc" ').message, /does not end with "}"$/);
    assert.equal(reasonOf(' \n{"type": 1}\n '), 'InvalidMessage', 'JSON whitespace around the object is allowed');
  });

  it('refuses unknown types and types from the wrong side', () => {
    assert.equal(reasonOf(JSON.stringify({ type: 'launch-missiles', protocolVersion: 1 })), 'UnknownType');
    assert.equal(reasonOf(JSON.stringify({ type: '__proto__', protocolVersion: 1 })), 'UnknownType');
    assert.equal(reasonOf(encodeMessage({ type: 'ack', uptoSeq: 1 }), 'from-agent'), 'UnexpectedMessage');
    assert.equal(reasonOf(JSON.stringify(hello), 'from-hub'), 'UnexpectedMessage');
  });

  it('names the field path and the reason of an invalid field', () => {
    const e = rejection(JSON.stringify({ ...hello, outbox: { firstSeq: 1, lastSeq: -1 } }));
    assert.equal(e.reason, 'InvalidMessage');
    assert.equal(e.path, 'outbox.lastSeq');
    assert.match(e.message, /hello: outbox\.lastSeq/);
    assert.equal(rejection(JSON.stringify({ ...hello, clusterId: 'Edge_1' })).path, 'clusterId');
  });

  it('requires reports to ascend after afterSeq', () => {
    const report = (seq: number) => ({ seq, kind: 'inventory', body: {}, createdAt: '2030-01-01T00:00:00.000Z' });
    assert.ok(parseMessage(JSON.stringify({ type: 'reports', protocolVersion: 1, afterSeq: 4, reports: [report(5), report(9)] })).ok);
    assert.equal(rejection(JSON.stringify({ type: 'reports', protocolVersion: 1, afterSeq: 4, reports: [report(5), report(5)] })).path, 'reports.1.seq');
    assert.equal(rejection(JSON.stringify({ type: 'reports', protocolVersion: 1, afterSeq: 5, reports: [report(5)] })).path, 'reports.0.seq');
    assert.equal(rejection(JSON.stringify({ type: 'reports', protocolVersion: 1, afterSeq: 0, reports: [] })).path, 'reports');
  });

  it('an accepted registration carries nothing secret: a credential field from an older hub is dropped', () => {
    const parsed = parseMessage(JSON.stringify({ type: 'registration', protocolVersion: 1, status: 'accepted', credential: 'c'.repeat(43) }));
    assert.ok(parsed.ok);
    assert.equal(parsed.ok && 'credential' in parsed.message, false);
  });

  it('refuses a frame nested past the depth limit before parsing it, and names only the position of a syntax error', () => {
    const deep = `{"type":"reports","protocolVersion":1,"afterSeq":0,"reports":[{"seq":1,"kind":"x","createdAt":"","body":${'['.repeat(10_000)}${']'.repeat(10_000)}}]}`;
    assert.equal(reasonOf(deep), 'TooDeep');
    // Brackets inside strings do not count.
    assert.ok(parseMessage(encodeMessage({ type: 'error', code: 'x', message: '['.repeat(1000) })).ok);
    const secret = 'bootstrap-token-that-must-not-leak';
    const broken = parseMessage(`{"type":"register","bootstrapToken":"${secret}",}`);
    assert.equal(broken.ok, false);
    assert.ok(!broken.ok && !broken.error.message.includes(secret.slice(0, 4)), broken.ok ? '' : broken.error.message);
  });
});

describe('parseReport', () => {
  it('validates known kinds and passes unknown kinds through', () => {
    const t = parseReport('attempt-transition', {
      attemptId: 'a1',
      release: { name: 'edge-addons', version: '1.4.2', revision: 2 },
      phase: 'Upgrading',
      stage: 0,
      reason: null,
      message: null,
      at: '2030-01-01T00:00:00.000Z',
    });
    assert.ok(t.known && t.ok);
    const bad = parseReport('attempt-transition', { attemptId: 'a1', phase: 'Exploded' });
    assert.ok(bad.known && !bad.ok);
    assert.match(bad.issue, /release|phase/);
    assert.deepEqual(parseReport('from-the-future', {}), { known: false, kind: 'from-the-future' });
    assert.equal(parseReport('toString', {}).known, false, 'prototype names are not kinds');
  });
});
