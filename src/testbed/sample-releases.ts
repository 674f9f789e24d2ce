// A three-component, two-stage release of made-up edge add-ons (dns,
// proxy, metrics): used by the demo and by the tests. Image tags ending in
// "-unready" are kept unready by the testbed's kwok stages.
import type { ReleaseInput } from '../protocol/release.ts';

export interface AddonVersions {
  dns: string;
  proxy: string;
  metrics: string;
  /** Image tag suffix for metrics-api, e.g. "-unready" to make stage 2 fail. */
  metricsApiSuffix?: string;
  /** Keep dns's legacy ConfigMap (v1 has it; later versions drop it, so it is pruned). */
  dnsLegacyConfig?: boolean;
}

export function addonsRelease(ns: string | undefined, revision: number, v: AddonVersions, extra: Partial<ReleaseInput> = {}): ReleaseInput {
  const labels = (app: string) => ({ app });
  const podTemplate = (app: string, image: string) => ({
    metadata: { labels: labels(app) },
    spec: { containers: [{ name: app, image }], terminationGracePeriodSeconds: 0 },
  });
  return {
    apiVersion: 'fleetlet.io/v1',
    kind: 'Release',
    name: 'edge-addons',
    version: `1.${revision}.0`,
    revision,
    issuedAt: new Date(Date.now() - 60_000).toISOString(),
    expiresAt: new Date(Date.now() + 86_400_000).toISOString(),
    components: [
      {
        name: 'dns',
        version: v.dns,
        stage: 0,
        health: { progressDeadlineSeconds: 30 },
        manifests: [
          { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'dns-config', namespace: ns }, data: { version: v.dns } },
          ...(v.dnsLegacyConfig ? [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'dns-legacy', namespace: ns }, data: { legacy: 'yes' } }] : []),
          {
            apiVersion: 'apps/v1',
            kind: 'Deployment',
            metadata: { name: 'dns', namespace: ns },
            spec: { replicas: 2, progressDeadlineSeconds: 10, selector: { matchLabels: labels('dns') }, template: podTemplate('dns', `registry.example/dns:${v.dns}`) },
          },
        ],
      },
      {
        name: 'proxy',
        version: v.proxy,
        stage: 0,
        health: { progressDeadlineSeconds: 30 },
        manifests: [
          {
            apiVersion: 'apps/v1',
            kind: 'DaemonSet',
            metadata: { name: 'proxy', namespace: ns },
            spec: { selector: { matchLabels: labels('proxy') }, template: podTemplate('proxy', `registry.example/proxy:${v.proxy}`) },
          },
        ],
      },
      {
        name: 'metrics',
        version: v.metrics,
        stage: 1,
        health: { progressDeadlineSeconds: 30 },
        manifests: [
          { apiVersion: 'v1', kind: 'Service', metadata: { name: 'metrics', namespace: ns }, spec: { clusterIP: 'None', selector: labels('metrics-store'), ports: [{ port: 9090 }] } },
          {
            apiVersion: 'apps/v1',
            kind: 'StatefulSet',
            metadata: { name: 'metrics-store', namespace: ns },
            spec: { replicas: 2, serviceName: 'metrics', selector: { matchLabels: labels('metrics-store') }, template: podTemplate('metrics-store', `registry.example/metrics-store:${v.metrics}`) },
          },
          {
            apiVersion: 'apps/v1',
            kind: 'Deployment',
            metadata: { name: 'metrics-api', namespace: ns },
            spec: {
              replicas: 1,
              progressDeadlineSeconds: 5,
              selector: { matchLabels: labels('metrics-api') },
              template: podTemplate('metrics-api', `registry.example/metrics-api:${v.metrics}${v.metricsApiSuffix ?? ''}`),
            },
          },
        ],
      },
    ],
    ...extra,
  };
}

/** The release as an operator sends it to the hub (PUT …/release, a rollout's target): without the fields the hub owns. */
export function asReleaseRequest(r: ReleaseInput): Omit<ReleaseInput, 'apiVersion' | 'kind' | 'revision' | 'issuedAt' | 'expiresAt'> {
  const { apiVersion: _a, kind: _k, revision: _r, issuedAt: _i, expiresAt: _e, ...request } = r;
  return request;
}
