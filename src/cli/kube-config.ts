import * as k8s from '@kubernetes/client-node';

/**
 * No kubeconfig anywhere and not in a pod. client-node then falls back to
 * plain HTTP on localhost:8080, and the first request fails with a message
 * about TLS settings that says nothing of the missing configuration.
 */
export class NoKubeconfig extends Error {
  readonly reason = 'NoKubeconfig';
  constructor() {
    super('no Kubernetes cluster to work on: pass --kubeconfig <file>, set KUBECONFIG, put one at ~/.kube/config, or run the agent in a pod (docs/deploy.md)');
    this.name = 'NoKubeconfig';
  }
}

/** An explicit kubeconfig path wins; otherwise in-cluster when running in a pod, else $KUBECONFIG/~/.kube/config; none of them is NoKubeconfig. */
export function loadKubeConfig(path?: string): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  if (path) kc.loadFromFile(path);
  else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
  else {
    kc.loadFromDefault();
    // client-node's last resort when it found nothing (KubeConfig.loadFromDefault).
    const cluster = kc.getCurrentCluster();
    if (cluster?.name === 'cluster' && cluster.server === 'http://localhost:8080' && kc.getCurrentUser()?.name === 'user') throw new NoKubeconfig();
  }
  return reuseConnections(kc);
}

type DispatcherFactory = (cluster: unknown, agentOptions: { ca?: unknown; cert?: unknown; key?: unknown; pfx?: unknown; passphrase?: unknown; servername?: unknown; rejectUnauthorized?: unknown }) => unknown;

/**
 * @kubernetes/client-node 2 builds a new undici Agent for every request
 * (KubeConfig.createDispatcher; kubernetes-client/javascript#2893 reports
 * the same for its https.Agent path): a new TLS context and connection per
 * call, which an agent that polls every second turns into steady growth of
 * native memory (docs/footprint.md, the soak). One dispatcher per distinct
 * TLS setting is reused instead, so connections are kept alive and shared.
 */
export function reuseConnections(kc: k8s.KubeConfig): k8s.KubeConfig {
  const target = kc as unknown as { createDispatcher: DispatcherFactory };
  const create = target.createDispatcher.bind(kc);
  const cache = new Map<string, unknown>();
  target.createDispatcher = (cluster, agentOptions) => {
    const key = JSON.stringify([cluster, agentOptions.ca, agentOptions.cert, agentOptions.key, agentOptions.pfx, agentOptions.passphrase, agentOptions.servername, agentOptions.rejectUnauthorized], asText);
    if (!cache.has(key)) cache.set(key, create(cluster, agentOptions));
    return cache.get(key);
  };
  return kc;
}

/** JSON replacer: a Buffer (CA, certificate, key) as base64, not as JSON's array of byte numbers. */
function asText(this: Record<string, unknown>, key: string, value: unknown): unknown {
  const raw = this[key];
  return Buffer.isBuffer(raw) ? raw.toString('base64') : value;
}
