import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import pino from 'pino';
import { parse } from 'yaml';
import { envSource, fileSource, type PodSpecView } from '../../src/agent/kube/pod-sources.ts';
import { describeMissing, missingInputs, unresolvedEnvReference, waitForStartupInputs, type StartupInput } from '../../src/agent/process/startup-inputs.ts';

/** The Deployment overlay's pod as the API returns it in fleetlet-system. */
function shippedPod(): PodSpecView {
  const deployment = parse(readFileSync(new URL('../../manifests/overlays/deployment/deployment.yaml', import.meta.url), 'utf8')) as { spec: { template: PodSpecView } };
  return { ...deployment.spec.template, metadata: { namespace: 'fleetlet-system' } };
}

const releaseKey: StartupInput = { what: 'release key', flag: '--release-key', file: '/etc/fleetlet/release-key/release.pub.pem' };
const clusterId: StartupInput = { what: 'cluster id', flag: '--cluster-id', env: { name: 'FLEETLET_CLUSTER_ID', value: undefined } };

function silentLogger() {
  const lines: { level: number; msg: string }[] = [];
  const logger = pino({ level: 'info' }, { write: (l: string) => lines.push(JSON.parse(l) as { level: number; msg: string }) });
  return { logger, lines };
}

describe('where a pod gets its inputs (pod-sources)', () => {
  it("finds the shipped manifests' ConfigMaps behind the release key, the policy and the cluster id", () => {
    const pod = shippedPod();
    assert.deepEqual(fileSource(pod, '/etc/fleetlet/release-key/release.pub.pem'), { kind: 'ConfigMap', namespace: 'fleetlet-system', name: 'fleetlet-release-key', key: 'release.pub.pem', via: 'volume release-key at /etc/fleetlet/release-key' });
    assert.equal(fileSource(pod, '/etc/fleetlet/policy/policy.yaml')?.name, 'fleetlet-policy');
    assert.deepEqual(envSource(pod, 'FLEETLET_CLUSTER_ID'), { kind: 'ConfigMap', namespace: 'fleetlet-system', name: 'fleetlet-cluster', key: 'cluster-id', via: 'env FLEETLET_CLUSTER_ID' });
    assert.equal(envSource(pod, 'FLEETLET_POD_NAME'), undefined, 'a fieldRef is no ConfigMap');
    assert.equal(fileSource(pod, '/var/lib/fleetlet/journal.db'), undefined, 'a PVC is no ConfigMap');
  });

  it('maps a projected item back to its key, and prefers the deepest mount', () => {
    const pod: PodSpecView = {
      metadata: { namespace: 'ns' },
      spec: {
        containers: [{ name: 'a', volumeMounts: [{ name: 'outer', mountPath: '/etc/x' }, { name: 'keys', mountPath: '/etc/x/keys' }] }],
        volumes: [{ name: 'outer', configMap: { name: 'outer-cm' } }, { name: 'keys', secret: { secretName: 'k', items: [{ key: 'tls.crt', path: 'cert.pem' }] } }],
      },
    };
    assert.deepEqual(fileSource(pod, '/etc/x/keys/cert.pem'), { kind: 'Secret', namespace: 'ns', name: 'k', key: 'tls.crt', via: 'volume keys at /etc/x/keys' });
    assert.equal(fileSource(pod, '/etc/x/other')?.name, 'outer-cm');
    assert.equal(fileSource(pod, '/etc/xy/other'), undefined, 'a path prefix that is not a directory prefix');
  });
});

describe('start-up inputs', () => {
  it('names the missing object and the kubectl command that creates it', () => {
    assert.equal(
      describeMissing(releaseKey, shippedPod()),
      'release key /etc/fleetlet/release-key/release.pub.pem (--release-key) is missing: it comes from ConfigMap fleetlet-system/fleetlet-release-key key release.pub.pem (volume release-key at /etc/fleetlet/release-key), which does not exist or lacks that key; create it: kubectl -n fleetlet-system create configmap fleetlet-release-key --from-file=release.pub.pem=<file>',
    );
    assert.match(describeMissing(clusterId, shippedPod()), /create it: kubectl -n fleetlet-system create configmap fleetlet-cluster --from-literal=cluster-id=<value> \(the agent restarts to read it\)$/);
    assert.equal(describeMissing(releaseKey, undefined), 'release key /etc/fleetlet/release-key/release.pub.pem (--release-key) is missing: no such file');
  });

  it("treats kubelet's unexpanded $(NAME) as not set", () => {
    assert.equal(unresolvedEnvReference('$(FLEETLET_ALLOWED_NAMESPACES)'), 'FLEETLET_ALLOWED_NAMESPACES');
    assert.equal(unresolvedEnvReference('monitoring,ingress'), undefined);
    const input: StartupInput = { what: 'allowed namespaces', flag: '--allowed-namespaces', env: { name: 'FLEETLET_ALLOWED_NAMESPACES', value: '$(FLEETLET_ALLOWED_NAMESPACES)' } };
    assert.deepEqual(missingInputs([input], () => true), [input]);
  });

  it('waits with backoff, logs one line per distinct problem, reports it for /readyz, and starts once the file is there', async () => {
    const { logger, lines } = silentLogger();
    let clock = 0;
    const sleeps: number[] = [];
    const problems: (string | undefined)[] = [];
    let present = false;
    const outcome = await waitForStartupInputs({
      inputs: [releaseKey],
      fileReady: () => present,
      pod: async () => shippedPod(),
      logger,
      onProblem: (m) => problems.push(m),
      sleep: async (ms) => {
        sleeps.push(ms);
        clock += ms;
        if (sleeps.length === 5) present = true;
      },
      now: () => clock,
      random: () => 0.999,
      signal: new AbortController().signal,
    });
    assert.equal(outcome, 'ready');
    assert.deepEqual(sleeps, [999, 1998, 3996, 7992, 15984]);
    assert.equal(lines.filter((l) => l.level === 50).length, 1, 'one error line, not one per retry');
    assert.match(lines[0]!.msg, /kubectl -n fleetlet-system create configmap fleetlet-release-key/);
    assert.equal(problems.length, 6);
    assert.match(problems[0]!, /fleetlet-release-key/);
    assert.equal(problems.at(-1), undefined, 'Ready again once the file is there');
  });

  it('exits for a restart when an env var is still missing after the hold time; stops on the signal', async () => {
    let clock = 0;
    const base = { fileReady: () => true, pod: async () => shippedPod(), logger: silentLogger().logger, onProblem: () => {}, now: () => clock, random: () => 0.5, envHoldMs: 10_000 };
    const restart = await waitForStartupInputs({ ...base, inputs: [clusterId], sleep: async (ms) => void (clock += ms), signal: new AbortController().signal });
    assert.equal(restart, 'restart');
    assert.ok(clock >= 10_000 && clock < 40_000, `held ${clock} ms`);
    const stop = new AbortController();
    const stopped = await waitForStartupInputs({ ...base, inputs: [releaseKey], fileReady: () => false, sleep: async () => stop.abort(), signal: stop.signal });
    assert.equal(stopped, 'stopped');
  });

  it('a pod that cannot be read still gets a message', async () => {
    const { logger, lines } = silentLogger();
    const stop = new AbortController();
    await waitForStartupInputs({ inputs: [releaseKey], fileReady: () => false, pod: () => Promise.reject(new Error('forbidden')), logger, onProblem: () => {}, sleep: async () => stop.abort(), now: () => 0, random: () => 0, signal: stop.signal });
    assert.match(lines[0]!.msg, /no such file$/);
  });
});
