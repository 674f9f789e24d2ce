import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { reuseConnections } from '../../src/cli/kube-config.ts';

function kubeConfig(server: string, ca: string): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server, caData: Buffer.from(ca).toString('base64'), skipTLSVerify: false }],
    users: [{ name: 'u', token: 'secret-token' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return kc;
}

/** The dispatcher and headers client-node attaches to one request. */
async function requestSettings(kc: k8s.KubeConfig): Promise<{ dispatcher: unknown; headers: Record<string, string> }> {
  const seen: { dispatcher: unknown; headers: Record<string, string> } = { dispatcher: undefined, headers: {} };
  const context = {
    setHeaderParam: (name: string, value: string) => { seen.headers[name] = value; },
    setDispatcher: (dispatcher: unknown) => { seen.dispatcher = dispatcher; },
  };
  await kc.applySecurityAuthentication(context as unknown as Parameters<k8s.KubeConfig['applySecurityAuthentication']>[0]);
  return seen;
}

describe('Kubernetes client connections', () => {
  it('client-node alone builds a new dispatcher (TLS context, connection) for every request', async () => {
    const kc = kubeConfig('https://127.0.0.1:6443', 'ca-one');
    const [a, b] = [await requestSettings(kc), await requestSettings(kc)];
    assert.ok(a.dispatcher);
    assert.notEqual(a.dispatcher, b.dispatcher);
  });

  it('reuses one dispatcher for every request with the same TLS setting, and still sends the credentials', async () => {
    const kc = reuseConnections(kubeConfig('https://127.0.0.1:6443', 'ca-one'));
    const [a, b] = [await requestSettings(kc), await requestSettings(kc)];
    assert.ok(a.dispatcher);
    assert.equal(a.dispatcher, b.dispatcher);
    assert.equal(b.headers.Authorization, 'Bearer secret-token');
  });

  it('keeps distinct dispatchers for a different CA or server', async () => {
    const one = reuseConnections(kubeConfig('https://127.0.0.1:6443', 'ca-one'));
    const first = (await requestSettings(one)).dispatcher;
    one.clusters[0] = { ...one.clusters[0]!, caData: Buffer.from('ca-two').toString('base64') };
    const otherCa = (await requestSettings(one)).dispatcher;
    one.clusters[0] = { ...one.clusters[0]!, server: 'https://127.0.0.2:6443' };
    const otherServer = (await requestSettings(one)).dispatcher;
    assert.notEqual(first, otherCa);
    assert.notEqual(otherCa, otherServer);
    assert.equal((await requestSettings(one)).dispatcher, otherServer);
  });
});
