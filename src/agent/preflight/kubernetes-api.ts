// The API server answers and runs a version the release supports. Admission
// checked the version once; a control-plane upgrade between admission and the
// window would otherwise go unnoticed.
import semver from 'semver';
import type { Release } from '../../protocol/release.ts';
import type { Check } from '../checks/check.ts';
import type { ClusterClient } from '../kube/cluster-client.ts';

export function kubernetesApiCheck(cluster: ClusterClient, release: Release, timeoutMs = 10_000): Check {
  return {
    name: 'kubernetes-api',
    timeoutMs,
    async run() {
      let version: string;
      try {
        version = await cluster.serverVersion();
      } catch (err) {
        return { result: 'error', message: `the Kubernetes API did not answer: ${(err as Error).message}` };
      }
      const v = semver.coerce(version);
      const { min, max } = release.kubernetesVersion;
      if (!v) return { result: 'error', message: `the API server reports version "${version}", which is not a version this agent can compare` };
      if (min && semver.lt(v, semver.coerce(min)!)) return { result: 'fail', message: `the cluster runs Kubernetes ${version}; release ${release.name} ${release.version} needs >= ${min}` };
      if (max && semver.gt(v, semver.coerce(max)!)) return { result: 'fail', message: `the cluster runs Kubernetes ${version}; release ${release.name} ${release.version} supports <= ${max}` };
      const range = min || max ? ` (release supports ${min ?? 'any'} to ${max ?? 'any'})` : '';
      return { result: 'pass', message: `API reachable, Kubernetes ${version}${range}` };
    },
  };
}
