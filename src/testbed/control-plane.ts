// The built-in test control plane: real etcd, kube-apiserver,
// kube-controller-manager and kube-scheduler, with kwok simulating nodes and
// driving pods through their lifecycle. Binaries come from
// scripts/build-control-plane.sh (built from Go modules, cached per version).
// Used by `npm test` (once per run) and by `fleetlet demo`.
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { kwokPodStages } from './kwok-stages.ts';

export interface ControlPlaneBinaries {
  kubeVersion: string;
  etcdVersion: string;
  kwokVersion: string;
  toxiproxyVersion: string;
  etcd: string;
  kubeApiserver: string;
  kubeControllerManager: string;
  kubeScheduler: string;
  kwok: string;
  toxiproxy: string;
  /** kubectl (with its kustomize), of the same Kubernetes version. */
  kubectl: string;
  /** CloudNativePG's Cluster CRD (its YAML), to validate the hub's PostgreSQL example against; absent in a cache built before it. */
  cnpgClusterCrd?: string;
}

export class ControlPlaneUnavailable extends Error {
  readonly reason: string;
  constructor(message: string) {
    super(message);
    this.name = 'ControlPlaneUnavailable';
    this.reason = 'ControlPlaneUnavailable';
  }
}

export function cacheDir(): string {
  return process.env.FLEETLET_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'fleetlet');
}

export function loadBinaries(): ControlPlaneBinaries {
  const manifest = join(cacheDir(), 'control-plane.json');
  if (!existsSync(manifest)) {
    throw new ControlPlaneUnavailable(`${manifest} is missing: run \`bash scripts/build-control-plane.sh\` (or \`npm run setup\`) to build the test control plane`);
  }
  const read = JSON.parse(readFileSync(manifest, 'utf8')) as Omit<ControlPlaneBinaries, 'kubectl'> & { kubectl?: string };
  // kubectl is cached beside the control plane, keyed by the same Kubernetes version.
  const bins: ControlPlaneBinaries = { ...read, kubectl: read.kubectl ?? join(cacheDir(), `kubectl-${read.kubeVersion}`, 'kubectl') };
  for (const key of ['etcd', 'kubeApiserver', 'kubeControllerManager', 'kubeScheduler', 'kwok', 'kubectl'] as const) {
    if (!existsSync(bins[key])) throw new ControlPlaneUnavailable(`${bins[key]} (${key}) is missing: re-run scripts/build-control-plane.sh`);
  }
  return bins;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export interface ControlPlane {
  /** Path of an admin kubeconfig (system:masters). */
  kubeconfigPath: string;
  server: string;
  /** Bearer token of the admin user. */
  adminToken: string;
  /** Version the API server reports on /version. */
  kubeVersion: string;
  binaries: ControlPlaneBinaries;
  dir: string;
  nodeNames: string[];
  pids: number[];
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Number of kwok nodes to create. */
  nodes?: number;
  /** Where process logs and state go; a fresh temp dir by default. */
  dir?: string;
  log?: (line: string) => void;
  signal?: AbortSignal;
}

async function waitFor(what: string, probe: () => Promise<boolean>, timeoutMs: number, child?: ChildProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child && child.exitCode !== null) throw new ControlPlaneUnavailable(`${what}: process exited with code ${child.exitCode}`);
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline) throw new ControlPlaneUnavailable(`${what} did not become ready within ${timeoutMs} ms`);
    await sleep(200);
  }
}

export async function startControlPlane(opts: StartOptions = {}): Promise<ControlPlane> {
  const bins = loadBinaries();
  const log = opts.log ?? (() => {});
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'fleetlet-cp-')));
  await mkdir(join(dir, 'logs'), { recursive: true });
  const children: ChildProcess[] = [];

  const run = (name: string, cmd: string, args: string[]): ChildProcess => {
    const out = createWriteStream(join(dir, 'logs', `${name}.log`));
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.pipe(out);
    child.stderr?.pipe(out);
    children.push(child);
    return child;
  };

  const stop = async (): Promise<void> => {
    for (const c of [...children].reverse()) if (c.exitCode === null) c.kill('SIGTERM');
    const deadline = Date.now() + 10_000;
    while (children.some((c) => c.exitCode === null && c.signalCode === null) && Date.now() < deadline) await sleep(50);
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    if (!opts.dir && !process.env.FLEETLET_KEEP_CONTROL_PLANE) await rm(dir, { recursive: true, force: true });
  };

  try {
    // Service-account tokens (TokenRequest) need a signing key; tests use
    // them to run the agent with its ServiceAccount's own credentials.
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    await writeFile(join(dir, 'sa.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
    await writeFile(join(dir, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
    const adminToken = randomBytes(24).toString('hex');
    await writeFile(join(dir, 'tokens.csv'), `${adminToken},admin,admin-uid,system:masters\n`);

    const [etcdClient, etcdPeer, apiPort] = [await freePort(), await freePort(), await freePort()];
    const server = `https://127.0.0.1:${apiPort}`;
    const kubeconfigPath = join(dir, 'kubeconfig');
    await writeFile(kubeconfigPath, kubeconfig(server, adminToken));

    log(`starting etcd ${bins.etcdVersion}`);
    const etcd = run('etcd', bins.etcd, [
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=default=http://127.0.0.1:${etcdPeer}`,
      // Test data is thrown away; fsync per write would only slow every test.
      '--unsafe-no-fsync',
      '--quota-backend-bytes=4294967296',
      '--log-level=warn',
    ]);
    await waitFor('etcd', async () => (await fetch(`http://127.0.0.1:${etcdClient}/health`)).ok, 30_000, etcd);

    log(`starting kube-apiserver ${bins.kubeVersion}`);
    const apiserver = run('kube-apiserver', bins.kubeApiserver, [
      `--etcd-servers=http://127.0.0.1:${etcdClient}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${apiPort}`,
      `--cert-dir=${join(dir, 'pki')}`,
      `--token-auth-file=${join(dir, 'tokens.csv')}`,
      '--authorization-mode=RBAC',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${join(dir, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
      '--service-cluster-ip-range=10.96.0.0/16',
      '--allow-privileged=true',
      '--enable-priority-and-fairness=false',
      '--v=0',
    ]);
    await waitFor('kube-apiserver', () => apiGet(server, adminToken, '/readyz').then((r) => r.status === 200), 120_000, apiserver);
    const version = JSON.parse((await apiGet(server, adminToken, '/version')).body) as { gitVersion: string };

    log('starting kube-controller-manager, kube-scheduler, kwok');
    run('kube-controller-manager', bins.kubeControllerManager, [
      `--kubeconfig=${kubeconfigPath}`,
      '--leader-elect=false',
      '--bind-address=127.0.0.1',
      '--secure-port=0',
      `--service-account-private-key-file=${join(dir, 'sa.key')}`,
      `--root-ca-file=${join(dir, 'pki', 'apiserver.crt')}`,
      '--controllers=*,-nodeipam,-cloud-node-lifecycle,-route,-service-lb-controller,-attachdetach',
      '--concurrent-deployment-syncs=10',
      '--v=0',
    ]);
    run('kube-scheduler', bins.kubeScheduler, [`--kubeconfig=${kubeconfigPath}`, '--leader-elect=false', '--bind-address=127.0.0.1', '--secure-port=0', '--v=0']);
    await writeFile(join(dir, 'kwok-stages.yaml'), kwokPodStages);
    run('kwok', bins.kwok, [
      `--kubeconfig=${kubeconfigPath}`,
      `--config=${join(dir, 'kwok-stages.yaml')}`,
      '--manage-all-nodes=false',
      '--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake',
      '--manage-nodes-with-label-selector=',
      '--disregard-status-with-annotation-selector=kwok.x-k8s.io/status=custom',
      '--disregard-status-with-label-selector=',
      '--cidr=10.0.0.1/24',
      '--node-ip=10.0.0.1',
      '--node-lease-duration-seconds=40',
      '--server-address=127.0.0.1:0',
    ]);

    const nodeNames: string[] = [];
    for (let i = 0; i < (opts.nodes ?? 3); i++) {
      const name = `kwok-node-${i}`;
      nodeNames.push(name);
      await apiSend(server, adminToken, 'POST', '/api/v1/nodes', {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: {
          name,
          annotations: { 'kwok.x-k8s.io/node': 'fake', 'node.alpha.kubernetes.io/ttl': '0' },
          labels: { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64', type: 'kwok' },
        },
        status: {},
      });
    }
    await waitFor(
      'kwok nodes Ready',
      async () => {
        const nodes = JSON.parse((await apiGet(server, adminToken, '/api/v1/nodes')).body) as { items: { status?: { conditions?: { type: string; status: string }[] } }[] };
        return nodes.items.length === nodeNames.length && nodes.items.every((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
      },
      60_000,
    );
    await waitFor('default ServiceAccount', async () => (await apiGet(server, adminToken, '/api/v1/namespaces/default/serviceaccounts/default')).status === 200, 60_000);
    log(`control plane ready: kube-apiserver ${version.gitVersion} at ${server}`);

    return {
      kubeconfigPath,
      server,
      adminToken,
      kubeVersion: version.gitVersion,
      binaries: bins,
      dir,
      nodeNames,
      pids: children.map((c) => c.pid ?? 0).filter((p) => p > 0),
      stop,
    };
  } catch (err) {
    await stop();
    if (err instanceof ControlPlaneUnavailable) {
      throw new ControlPlaneUnavailable(`${err.message} (logs in ${join(dir, 'logs')})`);
    }
    throw err;
  }
}

function kubeconfig(server: string, token: string): string {
  // The API server serves a self-signed certificate it generated at start;
  // this throw-away control plane is reached on loopback only.
  return `apiVersion: v1
kind: Config
clusters:
- name: fleetlet-test
  cluster:
    server: ${server}
    insecure-skip-tls-verify: true
users:
- name: admin
  user:
    token: ${token}
contexts:
- name: fleetlet-test
  context:
    cluster: fleetlet-test
    user: admin
current-context: fleetlet-test
`;
}

// Low-level HTTPS helpers for bootstrapping, before any client is set up.

function apiCall(server: string, token: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${server}${path}`,
      {
        method,
        rejectUnauthorized: false,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json' },
      },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (data += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
      },
    );
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error(`${method} ${path} timed out`)));
    if (body !== undefined) req.write(JSON.stringify(body));
    req.end();
  });
}

const apiGet = (server: string, token: string, path: string) => apiCall(server, token, 'GET', path);
async function apiSend(server: string, token: string, method: string, path: string, body: unknown): Promise<void> {
  const res = await apiCall(server, token, method, path, body);
  if (res.status >= 300) throw new ControlPlaneUnavailable(`${method} ${path}: HTTP ${res.status} ${res.body}`);
}
