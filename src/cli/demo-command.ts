// `fleetlet demo`: the whole loop on the built-in test control plane (real
// etcd, kube-apiserver, controller-manager, scheduler; kwok nodes): a hub,
// an agent registering with it, then three releases: a fresh install, an
// upgrade in two stages, and an upgrade whose second stage never becomes
// healthy and is rolled back automatically.
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import pino from 'pino';
import { startHub } from '../hub/start-hub.ts';
import { generateReleaseKey } from '../protocol/signing.ts';
import { startControlPlane } from '../testbed/control-plane.ts';
import { addonsRelease } from '../testbed/sample-releases.ts';
import { createAgentRuntime } from './agent-runtime.ts';
import { statusCommand } from './status-command.ts';

const say = (s: string) => process.stdout.write(`\n\x1b[1m== ${s}\x1b[0m\n`);

export async function demoCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { kubeconfig: { type: 'string' }, verbose: { type: 'boolean', default: false } } });
  const logger = pino({ level: values.verbose ? 'info' : 'warn' });
  const work = mkdtempSync(join(tmpdir(), 'fleetlet-demo-'));

  let kubeconfigPath = values.kubeconfig;
  let stopCluster = async () => {};
  if (!kubeconfigPath) {
    say('Starting the built-in control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)');
    const cp = await startControlPlane({ nodes: 3, log: (l) => process.stdout.write(`   ${l}\n`) });
    kubeconfigPath = cp.kubeconfigPath;
    stopCluster = cp.stop;
  }
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  for (const name of ['fleetlet-system', 'edge-addons']) {
    await core.createNamespace({ body: { metadata: { name } } }).catch(() => {});
  }

  say('Starting the hub and an agent for cluster "edge-1"');
  const keys = generateReleaseKey();
  const adminToken = randomBytes(16).toString('hex');
  const bootstrapToken = randomBytes(16).toString('hex');
  const hub = await startHub({ port: 0, dbPath: join(work, 'hub.db'), releaseKey: keys.privateKey, adminToken, bootstrapTokens: [bootstrapToken], heartbeatMs: 1000, now: () => new Date(), logger });
  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${hub.httpUrl}${path}`, { method, headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}) });
    const json = (await res.json()) as Record<string, unknown>;
    if (!res.ok) throw new Error(`${method} ${path}: ${JSON.stringify(json)}`);
    return json;
  };
  const runtime = await createAgentRuntime({
    clusterId: 'edge-1',
    journalPath: join(work, 'journal.db'),
    kubeConfig: kc,
    releaseKeys: [keys.publicKey],
    logger,
    namespace: 'fleetlet-system',
    pollMs: 300,
    hub: { url: hub.url, bootstrapToken, heartbeatMs: 1000 },
  });
  const controller = new AbortController();
  const running = runtime.run(controller.signal);

  const waitFor = async <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await probe().catch(() => undefined);
      if (v !== undefined) return v;
      if (Date.now() > deadline) throw new Error(`demo: timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 300));
    }
  };
  type View = { registration: string; upgrade?: { status: string; phase: string; reason: string | null; message: string | null; release: { version: string; revision: number } } };

  try {
    await waitFor('the registration request', async () => ((await api('GET', '/api/v1/clusters/edge-1')) as View).registration === 'Pending' || undefined);
    console.log('   edge-1 asked to register with its bootstrap token; the operator accepts it (double opt-in)');
    await api('POST', '/api/v1/clusters/edge-1/accept');
    await waitFor('the agent to store its credential', async () => ((await runtime.credentials.load()) ? true : undefined));
    console.log('   the agent stored its per-cluster credential in Secret fleetlet-system/fleetlet-hub-credential');

    const steps: { title: string; versions: Parameters<typeof addonsRelease>[2]; expect: string }[] = [
      { title: 'Release 1.1.0: install dns, proxy (stage 0) and metrics (stage 1)', versions: { dns: '1.0.0', proxy: '1.0.0', metrics: '1.0.0', dnsLegacyConfig: true }, expect: 'Succeeded' },
      { title: 'Release 1.2.0: upgrade all three, stage by stage, health-gated', versions: { dns: '1.1.0', proxy: '1.1.0', metrics: '1.1.0' }, expect: 'Succeeded' },
      { title: 'Release 1.3.0: metrics-api never becomes Ready: automatic rollback of both stages', versions: { dns: '1.2.0', proxy: '1.2.0', metrics: '1.2.0', metricsApiSuffix: '-unready' }, expect: 'RolledBack' },
    ];
    for (const [i, step] of steps.entries()) {
      say(step.title);
      const r = addonsRelease('edge-addons', i + 1, step.versions);
      const { apiVersion: _a, kind: _k, revision: _r, issuedAt: _i, expiresAt: _e, ...request } = r;
      const set = await api('PUT', '/api/v1/clusters/edge-1/release', { ...request, version: `1.${i + 1}.0` });
      console.log(`   hub signed revision ${String(set.revision)} and pushed it to the agent`);
      let lastPhase = '';
      const view = await waitFor(`release ${i + 1} to finish`, async () => {
        const v = (await api('GET', '/api/v1/clusters/edge-1')) as View;
        const u = v.upgrade;
        if (u && u.release.revision === set.revision && u.phase !== lastPhase) {
          lastPhase = u.phase;
          console.log(`   hub sees: ${u.status.padEnd(10)} ${u.phase}${u.reason ? ` (${u.reason})` : ''}`);
        }
        return u && u.release.revision === set.revision && ['Succeeded', 'RolledBack', 'Failed'].includes(u.phase) ? v : undefined;
      }, 180_000);
      if (view.upgrade?.phase !== step.expect) throw new Error(`demo: expected ${step.expect}, got ${view.upgrade?.phase}: ${view.upgrade?.message}`);
      if (view.upgrade.phase === 'RolledBack') console.log(`   reason: ${view.upgrade.message}`);
    }

    say('The agent\'s own record (`fleetlet status`)');
    controller.abort();
    await running;
    statusCommand([`--journal=${join(work, 'journal.db')}`]);

    say('The hub\'s fleet view (GET /api/v1/fleet/summary) and telemetry');
    console.log(JSON.stringify(await api('GET', '/api/v1/fleet/summary'), null, 2));
    const telemetry = (await api('GET', '/api/v1/telemetry')) as { events: unknown[] };
    for (const e of telemetry.events) console.log(`   ${JSON.stringify(e)}`);
    say('Done: every transition above was journaled before it was acted on, and reported to the hub exactly once');
    return 0;
  } finally {
    controller.abort();
    await running.catch(() => {});
    await hub.close();
    await stopCluster();
  }
}
