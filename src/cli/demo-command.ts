// `fleetlet demo`: the whole loop on the built-in test control plane (real
// etcd, kube-apiserver, controller-manager, scheduler; kwok nodes). A hub and
// three agents, each managing its own "cluster" (its own namespaces on the
// control plane): they register (the operator accepts them), then the hub
// rolls releases out canary first: an install, a two-stage upgrade, and an
// upgrade whose second stage never becomes healthy: the canary rolls itself
// back and the rollout pauses before any other cluster is touched.
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from '@commander-js/extra-typings';
import { addonsRelease, asReleaseRequest } from '../testbed/sample-releases.ts';
import { ExitCode, wholeNumber, type CommandContext } from './cli-support.ts';
import { printStatus } from './status-command.ts';

const say = (s: string) => process.stdout.write(`\n\x1b[1m== ${s}\x1b[0m\n`);
const line = (s: string) => process.stdout.write(`   ${s}\n`);

type View = { registration: string; upgrade?: { status: string; phase: string; reason: string | null; message: string | null; release: { version: string; revision: number } } };
type Rollout = { phase: string; reason: string | null; message: string | null; counts: Record<string, number>; groups: { name: string; counts: Record<string, number> }[] };

/**
 * The releases the demo rolls out, in order. Each release's version is the
 * version of every component it carries, so what the clusters run reads as
 * the release that put it there.
 */
export const demoSteps = [
  { rollout: 'install-1-0', version: '1.0.0', headline: 'install dns, proxy (stage 0) and metrics (stage 1) across the fleet', breaks: false },
  { rollout: 'upgrade-1-1', version: '1.1.0', headline: 'upgrade all three components, stage by stage, health-gated, cluster by cluster', breaks: false },
  { rollout: 'upgrade-1-2', version: '1.2.0', headline: 'its metrics-api never becomes Ready', breaks: true },
] as const;

/** What the demo asks the hub to roll out for a step: every component at the release's own version. */
export function demoRelease(step: (typeof demoSteps)[number]) {
  const v = step.version;
  return { ...asReleaseRequest(addonsRelease(undefined, 1, { dns: v, proxy: v, metrics: v, ...(step.breaks ? { metricsApiSuffix: '-unready' } : {}) })), version: v };
}

export function demoCommand(ctx: CommandContext) {
  return new Command('demo')
    .description('start the built-in test control plane and show a hub rolling releases out to three agents, canary first')
    .option('--kubeconfig <path>', 'use this cluster instead of starting the built-in control plane')
    .option('--verbose', 'show the hub and agent logs', false)
    .option('--dashboard-port <port>', 'port of the fleet dashboard it prints (0: any free one)', wholeNumber(0), 0)
    .action(async (o) => ctx.exit(await runDemo(o)));
}

async function runDemo(values: { kubeconfig?: string; verbose: boolean; dashboardPort: number }): Promise<number> {
  // Loaded here: the rest of the CLI does not need the testbed or the Kubernetes client.
  const [k8s, { default: pino }, { startHub }, { maintenancePolicy }, { generateReleaseKey }, { startControlPlane }, { createAgentRuntime }] = await Promise.all([
    import('@kubernetes/client-node'),
    import('pino'),
    import('../hub/start-hub.ts'),
    import('../protocol/policy.ts'),
    import('../protocol/signing.ts'),
    import('../testbed/control-plane.ts'),
    import('./agent-runtime.ts'),
  ]);
  const logger = pino({ level: values.verbose ? 'info' : 'error' });
  const work = mkdtempSync(join(tmpdir(), 'fleetlet-demo-'));

  let kubeconfigPath = values.kubeconfig;
  let stopCluster = async () => {};
  if (!kubeconfigPath) {
    say('Starting the built-in control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)');
    const cp = await startControlPlane({ nodes: 3, log: line });
    kubeconfigPath = cp.kubeconfigPath;
    stopCluster = cp.stop;
  }
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const apps = kc.makeApiClient(k8s.AppsV1Api);

  say('Starting the hub and three agents (edge-1 is the canary)');
  const keys = generateReleaseKey();
  const adminToken = randomBytes(16).toString('hex');
  const bootstrapToken = randomBytes(32).toString('base64url');
  const hub = await startHub({
    port: 0,
    dbPath: join(work, 'hub.db'),
    releaseKey: keys.privateKey,
    adminToken,
    bootstrapTokens: [bootstrapToken],
    heartbeatMs: 1000,
    rolloutTickMs: 250,
    dashboard: { port: values.dashboardPort },
    now: () => new Date(),
    logger,
  });
  const api = async <T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${hub.httpUrl}${path}`, { method, headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}) });
    const json = (await res.json()) as T;
    if (!res.ok) throw new Error(`${method} ${path}: ${JSON.stringify(json)}`);
    return json;
  };
  // Tokens with a role, as an admin makes them for people (docs/security.md).
  const viewer = await api<{ token: string }>('POST', '/api/v1/operator-tokens', { name: 'demo viewer', role: 'viewer' });
  const operator = await api<{ token: string }>('POST', '/api/v1/operator-tokens', { name: 'demo operator', role: 'operator' });
  line(`Follow along in the dashboard: ${hub.dashboardUrl ?? ''}`);
  line(`  sign in with the viewer token ${viewer.token} (looks only), or the operator token ${operator.token} (may pause, resume, cancel, roll back)`);
  const waitFor = async <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 180_000): Promise<T> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await probe().catch(() => undefined);
      if (v !== undefined) return v;
      if (Date.now() > deadline) throw new Error(`demo: timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 300));
    }
  };

  const clusters = ['edge-1', 'edge-2', 'edge-3'];
  const controller = new AbortController();
  const runs: Promise<void>[] = [];
  for (const id of clusters) {
    for (const ns of [`${id}-system`, `${id}-addons`]) await core.createNamespace({ body: { metadata: { name: ns } } }).catch(() => {});
    const runtime = await createAgentRuntime({
      clusterId: id,
      journalPath: join(work, `${id}.db`),
      kubeConfig: kc,
      releaseKeys: [keys.publicKey],
      logger,
      namespace: `${id}-system`,
      targetNamespace: `${id}-addons`,
      // The three "clusters" share the control plane's nodes; count only the kwok ones.
      policy: maintenancePolicy.parse({ apiVersion: 'fleetlet.io/v1', kind: 'MaintenancePolicy', checks: { builtin: { nodeSelector: { type: 'kwok' } } } }),
      pollMs: 300,
      hub: { url: hub.url, bootstrapToken, heartbeatMs: 1000 },
      agent: { idleMs: 300 },
    });
    runs.push(runtime.run(controller.signal));
  }

  const rollout = async (step: (typeof demoSteps)[number], expect: string[]) => {
    const { rollout: name, version } = step;
    await api('POST', '/api/v1/rollouts', {
      name,
      groups: [{ name: 'canary', mandatory: true, selector: { matchLabels: { ring: 'canary' } } }],
      strategy: { type: 'Progressive', maxConcurrency: 1, minSuccessTime: '2s', progressDeadline: '5m' },
      target: { kind: 'Release', release: demoRelease(step) },
    });
    line(`rollout ${name}: canary group first, then one cluster at a time, each proven healthy for 2s before the next starts`);
    const seen = new Map<string, string>();
    const r = await waitFor(`rollout ${name}`, async () => {
      for (const id of clusters) {
        const u = ((await api('GET', `/api/v1/clusters/${id}`)) as View).upgrade;
        const now = u && u.release.version === version ? `${u.status} ${u.phase}${u.reason && u.phase !== 'Succeeded' ? ` (${u.reason})` : ''}` : '';
        if (now && seen.get(id) !== now) {
          seen.set(id, now);
          line(`${id}: ${now}`);
        }
      }
      const s = await api<Rollout>('GET', `/api/v1/rollouts/${name}`);
      return expect.includes(s.phase) ? s : undefined;
    });
    line(`rollout ${name}: ${r.phase}${r.reason ? ` (${r.reason})` : ''} — ${Object.entries(r.counts).filter(([k, n]) => n && k !== 'total').map(([k, n]) => `${k} ${n}`).join(', ')}`);
    return r;
  };

  try {
    for (const id of clusters) {
      await waitFor(`${id} to ask to register`, async () => (((await api('GET', `/api/v1/clusters/${id}`)) as View).registration === 'Pending' ? true : undefined));
      await api('POST', `/api/v1/clusters/${id}/accept`);
      await api('PUT', `/api/v1/clusters/${id}/labels`, { labels: { ring: id === 'edge-1' ? 'canary' : 'prod' } });
    }
    line('each agent registered with the bootstrap token; the operator accepted its key; the private half never left the Secret on its cluster');

    let bad: Rollout | undefined;
    for (const step of demoSteps) {
      say(`Release ${step.version}: ${step.headline}`);
      const r = await rollout(step, [step.breaks ? 'Paused' : 'Succeeded']);
      if (step.breaks) bad = r;
    }
    line(`the canary rolled back on its own and the rollout stopped: ${bad?.message ?? ''}`);
    for (const id of ['edge-2', 'edge-3']) {
      const d = await apps.readNamespacedDeployment({ name: 'metrics-api', namespace: `${id}-addons` });
      line(`${id} was never touched: metrics-api runs ${d.spec?.template.spec?.containers[0]?.image}`);
    }

    say("The canary's own record (`fleetlet status --journal edge-1.db`)");
    controller.abort();
    await Promise.all(runs);
    await printStatus({ journal: join(work, 'edge-1.db'), json: false, history: 10 }, { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) });

    say("The hub's fleet view (GET /api/v1/fleet/summary) and upgrade telemetry");
    const summary = await api<{ byReleaseVersion: Record<string, number>; byUpgradeStatus: Record<string, number>; failed: { clusterId: string; reason: string }[] }>('GET', '/api/v1/fleet/summary');
    line(`running versions: ${JSON.stringify(summary.byReleaseVersion)}; upgrade status: ${JSON.stringify(summary.byUpgradeStatus)}`);
    for (const f of summary.failed) line(`needs attention: ${f.clusterId} (${f.reason})`);
    const telemetry = (await api('GET', '/api/v1/telemetry')) as { events: { event: { cluster_id: string; release: { version: string }; result: string; durationMs: number; target_infrastructure: string } }[] };
    for (const e of telemetry.events) line(`${e.event.cluster_id} ${e.event.release.version} ${e.event.result} in ${e.event.durationMs} ms on ${e.event.target_infrastructure}`);
    say('Done: every transition was journaled before it was acted on, and reached the hub exactly once');
    if (process.stdin.isTTY) {
      line(`The hub and its dashboard stay up (${hub.dashboardUrl ?? ''}): press Ctrl-C to stop.`);
      await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
    }
    return ExitCode.Ok;
  } finally {
    controller.abort();
    await Promise.allSettled(runs);
    await hub.close();
    await stopCluster();
  }
}
