// One real node for the run's control plane: the kubelet built from the same
// Kubernetes module as the API server (scripts/build-control-plane.sh), a
// private containerd (Debian's, with its CRI plugin) running pods with runc,
// the bridge CNI plugin from Debian's containernetworking-plugins, and a pause
// image built here (nothing can be pulled: a static Go binary, cached by
// scripts/build-control-plane.sh, in a FROM-scratch image). This machine kind
// runs cgroup v1, which the kubelet allows only with failCgroupV1: false.
//
// The node is tainted (fleetlet.io/real-node:NoSchedule) so the kwok-driven
// workloads of other tests never land on it; a test's pods tolerate the taint
// and select the node by name. Everything lives under one directory (state,
// sockets, pod volumes, IPAM) and the cgroups under a parent of its own, so
// nothing is shared with another run; stop() deletes the Node, stops the
// kubelet and containerd by pid, kills what they left and removes the rest.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, readdirSync, readFileSync, readlinkSync, rmdirSync, statSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as k8s from '@kubernetes/client-node';
import { cacheDir, freePort } from '../../src/testbed/control-plane.ts';
import { docker, dockerClient, unmountBelow } from './docker-engine.ts';
import { fileLock } from './run-lock.ts';

export const REAL_NODE_TAINT = { key: 'fleetlet.io/real-node', value: 'true', effect: 'NoSchedule' } as const;
export const PAUSE_IMAGE = 'fleetlet.local/pause:3.10';
const CNI_BIN_DIRS = ['/usr/lib/cni', '/opt/cni/bin'];

export class RealNodeUnavailable extends Error {
  readonly reason = 'RealNodeUnavailable';
  constructor(message: string) {
    super(message);
    this.name = 'RealNodeUnavailable';
  }
}

export interface RealNode {
  name: string;
  /** The node's InternalIP: where its pods reach the host (a hub, say). */
  address: string;
  dir: string;
  /** containerd's socket, for `ctr -a`. */
  containerdSocket: string;
  /** Imports an image from the Docker engine into the node's containerd (`docker save | ctr images import`). */
  loadImage(dockerHost: string, tag: string): Promise<void>;
  /** The last lines of the kubelet's and containerd's logs, for a failure message. */
  logs(): string;
  /** What a container of a pod on this node wrote (all its runs), read from the kubelet's log directory. */
  containerLogs(namespace: string, pod: string, container: string): string;
  stop(): Promise<void>;
}

interface Binaries {
  kubelet: string;
  pause: string;
  containerd: string;
  ctr: string;
  cniBinDir: string;
}

function findBinaries(kubeVersion: string): Binaries {
  const manifest = JSON.parse(readFileSync(join(cacheDir(), 'control-plane.json'), 'utf8')) as { kubelet?: string; pause?: string };
  const kubelet = manifest.kubelet ?? join(cacheDir(), `kubelet-${kubeVersion}`, 'kubelet');
  const pause = manifest.pause ?? join(cacheDir(), 'pause-fleetlet-1', 'pause');
  const which = (name: string) => ['/usr/bin', '/usr/sbin', '/usr/local/bin'].map((d) => join(d, name)).find((p) => existsSync(p));
  const containerd = which('containerd');
  const ctr = which('ctr');
  const runc = which('runc');
  const cniBinDir = CNI_BIN_DIRS.find((d) => existsSync(join(d, 'bridge')) && existsSync(join(d, 'host-local')) && existsSync(join(d, 'loopback')));
  const missing = [
    !existsSync(kubelet) && `${kubelet} (re-run scripts/build-control-plane.sh)`,
    !existsSync(pause) && 'the pause binary (re-run scripts/build-control-plane.sh)',
    !containerd && 'containerd (Debian package containerd)',
    !ctr && 'ctr (Debian package containerd)',
    !runc && 'runc (Debian package runc)',
    !cniBinDir && 'the bridge, host-local and loopback CNI plugins (Debian package containernetworking-plugins)',
  ].filter(Boolean);
  if (missing.length) throw new RealNodeUnavailable(`a real node needs: ${missing.join('; ')} (npm run setup installs them)`);
  if (process.getuid?.() !== 0) throw new RealNodeUnavailable('a real node needs root (the kubelet and containerd mount, make cgroups and network namespaces)');
  return { kubelet, pause, containerd: containerd!, ctr: ctr!, cniBinDir: cniBinDir! };
}

function run(cmd: string, args: string[], opts: { input?: NodeJS.ReadableStream; timeoutMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: [opts.input ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (out += c));
    if (opts.input) opts.input.pipe(child.stdin!);
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 300_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${out.slice(-3000)}`));
    });
  });
}

/**
 * The API server's Service address (`kubernetes` in default, 10.96.0.1:443),
 * reachable from the node's pods as kube-proxy would make it: the address on
 * the host's loopback interface and a TCP relay from it to the API server,
 * which this control plane serves on 127.0.0.1 only. Pods get it as
 * KUBERNETES_SERVICE_HOST/PORT from the kubelet, and the serving certificate
 * names it, so in-cluster clients verify it as in any cluster.
 */
async function startServiceRelay(core: k8s.CoreV1Api, apiServer: URL): Promise<{ close(): Promise<void> }> {
  const svc = await core.readNamespacedService({ name: 'kubernetes', namespace: 'default' });
  const ip = svc.spec?.clusterIP;
  const port = svc.spec?.ports?.[0]?.port;
  if (!ip || !port) throw new RealNodeUnavailable('the kubernetes Service has no ClusterIP or port');
  const added = spawnSync('ip', ['addr', 'add', `${ip}/32`, 'dev', 'lo'], { encoding: 'utf8' });
  if (added.status !== 0 && !/exists/i.test(added.stderr)) throw new RealNodeUnavailable(`ip addr add ${ip}/32 dev lo: ${added.stderr}`);
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = createConnection({ host: apiServer.hostname, port: Number(apiServer.port) });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, ip, () => resolve());
  });
  return {
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      spawnSync('ip', ['addr', 'del', `${ip}/32`, 'dev', 'lo']);
    },
  };
}

const tail = (path: string, n = 25) => (existsSync(path) ? readFileSync(path, 'utf8').split('\n').slice(-n).join('\n') : '');

/** The pause image: the static binary in a FROM-scratch image, built by the run's Docker engine. */
async function buildPauseImage(dockerHost: string, pause: string): Promise<void> {
  const ctx = await mkdtemp(join(tmpdir(), 'fleetlet-pause-'));
  try {
    await run('cp', [pause, join(ctx, 'pause')]);
    await writeFile(join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n');
    await docker(dockerHost, ['build', '-q', '-t', PAUSE_IMAGE, ctx], { env: { DOCKER_BUILDKIT: '1' } });
  } finally {
    await rm(ctx, { recursive: true, force: true });
  }
}

export async function startRealNode(opts: { kc: k8s.KubeConfig; kubeconfigPath: string; kubeVersion: string; dockerHost: string; log?: (line: string) => void }): Promise<RealNode> {
  const bins = findBinaries(opts.kubeVersion);
  const log = opts.log ?? (() => {});
  // One real node per machine at a time: it takes the API server's Service
  // address on this host (startServiceRelay). Another run's node is waited for.
  const unlock = await fileLock(join(tmpdir(), 'fleetlet-real-node.lock'));
  let relay: { close(): Promise<void> } | undefined;
  const id = randomBytes(3).toString('hex');
  const name = `real-node-${id}`;
  const dir = await mkdtemp(join(tmpdir(), 'fleetlet-node-'));
  const sock = join(dir, 'containerd.sock');
  const children: ChildProcess[] = [];
  const core = opts.kc.makeApiClient(k8s.CoreV1Api);
  const bridge = `flt${id}`;
  // A /24 per node, out of the range other runs pick from at random.
  const subnet = `10.${200 + (parseInt(id.slice(0, 2), 16) % 50)}.${parseInt(id.slice(2, 4), 16)}.0/24`;
  const cgroupRoot = `/fleetlet-${id}`;

  const spawnLogged = (logName: string, cmd: string, args: string[]): ChildProcess => {
    const out = createWriteStream(join(dir, `${logName}.log`));
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.pipe(out);
    child.stderr!.pipe(out);
    children.push(child);
    return child;
  };
  const ctr = (args: string[], input?: NodeJS.ReadableStream) => run(bins.ctr, ['-a', sock, '-n', 'k8s.io', ...args], { input });

  const logs = () => `--- kubelet\n${tail(join(dir, 'kubelet.log'))}\n--- containerd\n${tail(join(dir, 'containerd.log'))}`;

  const stop = async (): Promise<void> => {
    await core.deleteNode({ name }).catch(() => {});
    // The kubelet first (it would restart what containerd is asked to stop), then
    // every task containerd still runs, then containerd.
    const [containerd, kubelet] = children;
    const end = async (c: ChildProcess | undefined) => {
      if (!c || c.exitCode !== null || c.signalCode !== null) return;
      c.kill('SIGTERM');
      const deadline = Date.now() + 15_000;
      while (c.exitCode === null && c.signalCode === null && Date.now() < deadline) await sleep(100);
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    };
    await end(kubelet);
    if (containerd && containerd.exitCode === null) {
      // Shims outlive containerd: end every task first.
      const tasks = (await ctr(['tasks', 'ls', '-q']).catch(() => '')).split('\n').filter(Boolean);
      for (const task of tasks) await ctr(['tasks', 'kill', '-s', 'SIGKILL', task]).catch(() => {});
      if (tasks.length) await sleep(500);
      for (const task of tasks) await ctr(['tasks', 'delete', '-f', task]).catch(() => {});
    }
    await end(containerd);
    // Whatever the kubelet and containerd left mounted (pod volumes, sandboxes' shm, rootfs).
    unmountBelow(dir);
    // The kubelet links each container's log into /var/log/containers.
    const links = '/var/log/containers';
    for (const l of existsSync(links) ? readdirSync(links) : []) {
      const target = (() => {
        try {
          return readlinkSync(join(links, l), { encoding: 'utf8' });
        } catch {
          return ''; // not a link
        }
      })();
      if (target.startsWith(`${dir}/`)) unlinkSync(join(links, l));
    }
    spawnSync('ip', ['link', 'delete', bridge]);
    removeCgroups(cgroupRoot);
    await relay?.close();
    await rm(dir, { recursive: true, force: true }).catch(() => {});
    await unlock();
  };

  try {
    relay = await startServiceRelay(core, new URL(opts.kc.getCurrentCluster()!.server));
    // containerd, with the CRI plugin Docker's own containerd runs without.
    await mkdir(join(dir, 'net.d'), { recursive: true });
    await writeFile(
      join(dir, 'containerd.toml'),
      `version = 2
root = "${dir}/containerd-root"
state = "${dir}/containerd-state"
[grpc]
  address = "${sock}"
[ttrpc]
  address = "${sock}.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "${dir}/containerd-opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${PAUSE_IMAGE}"
  # Inside a container whose own oom_score_adj is raised, a pod may not lower its own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${bins.cniBinDir}"
    conf_dir = "${dir}/net.d"
`,
    );
    await writeFile(
      join(dir, 'net.d', '10-fleetlet.conflist'),
      JSON.stringify({
        cniVersion: '0.4.0',
        name: 'fleetlet',
        plugins: [{ type: 'bridge', bridge, isGateway: true, ipMasq: false, hairpinMode: true, ipam: { type: 'host-local', ranges: [[{ subnet }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: join(dir, 'ipam') } }],
      }),
    );
    log(`starting containerd (${sock})`);
    const containerd = spawnLogged('containerd', bins.containerd, ['--config', join(dir, 'containerd.toml'), '--log-level', 'warn']);
    const deadline = Date.now() + 30_000;
    while (!(await ctr(['version']).then(() => true, () => false))) {
      if (containerd.exitCode !== null) throw new RealNodeUnavailable(`containerd exited ${containerd.exitCode}: ${tail(join(dir, 'containerd.log'))}`);
      if (Date.now() > deadline) throw new RealNodeUnavailable(`containerd did not answer within 30 s: ${tail(join(dir, 'containerd.log'))}`);
      await sleep(200);
    }

    await buildPauseImage(opts.dockerHost, bins.pause);
    const node: RealNode = {
      name,
      address: '',
      dir,
      containerdSocket: sock,
      async loadImage(dockerHost, tag) {
        const save = spawn(dockerClient(), ['save', tag], { env: { ...process.env, DOCKER_HOST: dockerHost }, stdio: ['ignore', 'pipe', 'inherit'] });
        await ctr(['images', 'import', '-'], save.stdout);
      },
      logs,
      containerLogs(namespace, pod, container) {
        const logsDir = join(dir, 'pod-logs');
        const podDirs = existsSync(logsDir) ? readdirSync(logsDir).filter((d) => d.startsWith(`${namespace}_${pod}_`)) : [];
        return podDirs
          .flatMap((d) => {
            const c = join(logsDir, d, container);
            return existsSync(c) ? readdirSync(c).sort().map((f) => readFileSync(join(c, f), 'utf8')) : [];
          })
          .join('');
      },
      stop,
    };
    await node.loadImage(opts.dockerHost, PAUSE_IMAGE);

    // The kubelet: its own ports, root directory and cgroup parent.
    const [port, healthzPort] = [await freePort(), await freePort()];
    await writeFile(
      join(dir, 'kubelet.yaml'),
      JSON.stringify({
        apiVersion: 'kubelet.config.k8s.io/v1beta1',
        kind: 'KubeletConfiguration',
        failCgroupV1: false,
        cgroupDriver: 'cgroupfs',
        cgroupRoot,
        containerRuntimeEndpoint: `unix://${sock}`,
        port,
        readOnlyPort: 0,
        healthzBindAddress: '127.0.0.1',
        healthzPort,
        // The API server reaches the kubelet (logs, exec) without a client certificate.
        authentication: { anonymous: { enabled: true }, webhook: { enabled: false }, x509: {} },
        authorization: { mode: 'AlwaysAllow' },
        registerWithTaints: [REAL_NODE_TAINT],
        failSwapOn: false,
        // A shared test machine's disk and memory are not this node's to police.
        evictionHard: { 'memory.available': '1Mi', 'nodefs.available': '1%', 'imagefs.available': '1%', 'nodefs.inodesFree': '1%' },
        imageGCHighThresholdPercent: 100,
        imageGCLowThresholdPercent: 99,
        makeIPTablesUtilChains: false,
        resolvConf: '/etc/resolv.conf',
        serializeImagePulls: false,
        podLogsDir: join(dir, 'pod-logs'),
        // ConfigMap volumes refresh this often (the default is a minute).
        syncFrequency: '10s',
        staticPodPath: '',
      }),
    );
    // The kubelet puts its pods below this parent, which must exist in every hierarchy.
    for (const hierarchy of cgroupHierarchies()) await mkdir(join(hierarchy, cgroupRoot), { recursive: true });
    log(`starting kubelet ${opts.kubeVersion} as node ${name}`);
    const kubelet = spawnLogged('kubelet', bins.kubelet, [
      `--config=${join(dir, 'kubelet.yaml')}`,
      `--kubeconfig=${opts.kubeconfigPath}`,
      `--root-dir=${join(dir, 'kubelet')}`,
      `--cert-dir=${join(dir, 'kubelet-pki')}`,
      `--hostname-override=${name}`,
      '--v=1',
    ]);
    const readyBy = Date.now() + 120_000;
    for (;;) {
      if (kubelet.exitCode !== null) throw new RealNodeUnavailable(`kubelet exited ${kubelet.exitCode}:\n${logs()}`);
      const n = await core.readNode({ name }).catch(() => undefined);
      if (n?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')) break;
      if (Date.now() > readyBy) {
        const why = n?.status?.conditions?.find((c) => c.type === 'Ready');
        throw new RealNodeUnavailable(`node ${name} not Ready within 120 s (${n ? `${why?.reason}: ${why?.message}` : 'never registered'}):\n${logs()}`);
      }
      await sleep(500);
    }
    const ready = await core.readNode({ name });
    node.address = ready.status?.addresses?.find((a) => a.type === 'InternalIP')?.address ?? '';
    if (!node.address) throw new RealNodeUnavailable(`node ${name} reports no InternalIP`);
    log(`node ${name} Ready at ${node.address}`);
    return node;
  } catch (err) {
    const failure = err instanceof RealNodeUnavailable ? err : new RealNodeUnavailable(`${err instanceof Error ? err.message : String(err)}\n${logs()}`);
    await stop();
    throw failure;
  }
}

/** The cgroup v1 hierarchies (a v2 machine has one, the root itself). */
function cgroupHierarchies(): string[] {
  const base = '/sys/fs/cgroup';
  if (existsSync(join(base, 'cgroup.controllers'))) return [base];
  return readdirSync(base, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => join(base, e.name));
}

/** Removes the node's cgroup parent in every hierarchy (leaves first). */
function removeCgroups(root: string): void {
  for (const hierarchy of cgroupHierarchies()) {
    const top = join(hierarchy, root);
    if (!existsSync(top)) continue;
    const dirs: string[] = [];
    const walk = (d: string) => {
      for (const e of readdirSync(d)) {
        const p = join(d, e);
        if (statSync(p).isDirectory()) walk(p);
      }
      dirs.push(d);
    };
    try {
      walk(top);
      for (const d of dirs) rmdirSync(d);
    } catch {
      // A cgroup still holding a process stays; the next boot clears it.
    }
  }
}
