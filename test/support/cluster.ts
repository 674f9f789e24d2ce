// Per-test access to the run's control plane: each test gets its own
// namespace, deleted afterwards.
import { randomBytes } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';

export function kubeConfig(): k8s.KubeConfig {
  const path = process.env.FLEETLET_TEST_KUBECONFIG;
  if (!path) throw new Error('FLEETLET_TEST_KUBECONFIG is not set: run tests through `npm test` (it starts the control plane)');
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(path);
  return kc;
}

export interface TestNamespace {
  kc: k8s.KubeConfig;
  name: string;
  core: k8s.CoreV1Api;
  apps: k8s.AppsV1Api;
  dispose(): Promise<void>;
}

export async function testNamespace(prefix = 't'): Promise<TestNamespace> {
  const kc = kubeConfig();
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const apps = kc.makeApiClient(k8s.AppsV1Api);
  const name = `${prefix}-${randomBytes(4).toString('hex')}`;
  await core.createNamespace({ body: { metadata: { name, labels: { 'fleetlet.io/test': 'true' } } } });
  return {
    kc,
    name,
    core,
    apps,
    async dispose() {
      await core.deleteNamespace({ name }).catch(() => {});
    },
  };
}

/** Polls until `probe` returns a value (not undefined) or the timeout passes; the error names what was awaited. */
export async function eventually<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000, intervalMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
