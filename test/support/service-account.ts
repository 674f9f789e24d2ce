// Acting as a ServiceAccount against the run's control plane: a short-lived
// token from the TokenRequest API, in a KubeConfig of its own, so a test
// sees exactly what that account may do (RBAC is on).
import * as k8s from '@kubernetes/client-node';
import { kubeConfig } from './cluster.ts';

export async function serviceAccountKubeConfig(namespace: string, name: string, expirationSeconds = 3600): Promise<k8s.KubeConfig> {
  const admin = kubeConfig();
  const core = admin.makeApiClient(k8s.CoreV1Api);
  const res = await core.createNamespacedServiceAccountToken({ name, namespace, body: { spec: { audiences: [], expirationSeconds } } });
  const token = res.status?.token;
  if (!token) throw new Error(`TokenRequest for ${namespace}/${name} returned no token`);
  const server = admin.getCurrentCluster()?.server;
  if (!server) throw new Error('the admin kubeconfig names no server');
  const kc = new k8s.KubeConfig();
  // The test API server's certificate is self-signed and reached on loopback only.
  kc.loadFromOptions({
    clusters: [{ name: 'test', server, skipTLSVerify: true }],
    users: [{ name: `system:serviceaccount:${namespace}:${name}`, token }],
    contexts: [{ name: 'test', cluster: 'test', user: `system:serviceaccount:${namespace}:${name}` }],
    currentContext: 'test',
  });
  return kc;
}

export interface AccessQuestion {
  verb: string;
  resource: string;
  group?: string;
  namespace?: string;
  name?: string;
}

/** SelfSubjectAccessReview: may the identity of `kc` do this? */
export async function canI(kc: k8s.KubeConfig, q: AccessQuestion): Promise<{ allowed: boolean; reason: string }> {
  const authz = kc.makeApiClient(k8s.AuthorizationV1Api);
  const res = await authz.createSelfSubjectAccessReview({
    body: { spec: { resourceAttributes: { verb: q.verb, resource: q.resource, group: q.group ?? '', ...(q.namespace ? { namespace: q.namespace } : {}), ...(q.name ? { name: q.name } : {}) } } },
  });
  return { allowed: res.status?.allowed === true, reason: res.status?.reason ?? '' };
}
