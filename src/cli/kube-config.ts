import * as k8s from '@kubernetes/client-node';

/** An explicit kubeconfig path wins; otherwise in-cluster when running in a pod, else $KUBECONFIG/~/.kube/config. */
export function loadKubeConfig(path?: string): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  if (path) kc.loadFromFile(path);
  else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
  else kc.loadFromDefault();
  return kc;
}
