// A private Docker engine for one test run: Debian's dockerd (installed by
// scripts/setup.sh), with its own data root, exec root and socket under the
// run's directory, so concurrent runs on one machine never share state. It has
// no bridge network and touches no iptables rules: containers and builds use
// the host network, where the test control plane listens on loopback.
// Started by the global set-up, stopped by its pid in the teardown.
import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface DockerEngine {
  /** DOCKER_HOST value for clients. */
  host: string;
  pid: number;
  stop(): Promise<void>;
}

export class DockerUnavailable extends Error {
  readonly reason = 'DockerUnavailable';
  constructor(message: string) {
    super(message);
    this.name = 'DockerUnavailable';
  }
}

/** Runs the docker client against `host`; resolves with its output, rejects with it on a non-zero exit. */
export function docker(host: string, args: string[], opts: { input?: string | Buffer; env?: Record<string, string>; timeoutMs?: number } = {}): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(dockerClient(), args, { env: { ...process.env, DOCKER_HOST: host, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve({ stdout, stderr });
      else reject(new Error(`docker ${args.slice(0, 2).join(' ')} exited ${code ?? signal}:\n${stderr.slice(-4000)}${stdout.slice(-4000)}`));
    });
    child.stdin.end(opts.input);
  });
}

/**
 * The client that ships with Debian's engine: it builds with BuildKit
 * (build secrets) without the buildx plugin, which a newer stand-alone client
 * on PATH would insist on.
 */
export function dockerClient(): string {
  return existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker';
}

export async function startDockerEngine(dir: string, log: (line: string) => void = () => {}): Promise<DockerEngine> {
  const dockerd = ['/usr/sbin/dockerd', '/usr/bin/dockerd'].find((p) => existsSync(p));
  if (!dockerd) throw new DockerUnavailable('dockerd is not installed: run `npm run setup` (it installs Debian\'s docker.io)');
  await mkdir(dir, { recursive: true });
  const host = `unix://${join(dir, 'docker.sock')}`;
  const out = createWriteStream(join(dir, 'dockerd.log'));
  const child = spawn(
    dockerd,
    [
      `--data-root=${join(dir, 'data')}`,
      `--exec-root=${join(dir, 'exec')}`,
      `--pidfile=${join(dir, 'docker.pid')}`,
      `--host=${host}`,
      '--bridge=none',
      '--iptables=false',
      '--ip-masq=false',
      '--ip-forward=false',
      '--storage-driver=overlay2',
      '--log-level=warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], detached: false },
  );
  child.stdout.pipe(out);
  child.stderr.pipe(out);
  const pid = child.pid;
  if (!pid) throw new DockerUnavailable(`${dockerd} did not start`);
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    process.kill(pid, 'SIGTERM');
    const deadline = Date.now() + 20_000;
    while (child.exitCode === null && child.signalCode === null && Date.now() < deadline) await sleep(100);
    if (child.exitCode === null && child.signalCode === null) process.kill(pid, 'SIGKILL');
    // dockerd leaves its default network namespace mounted under the exec root; unmount
    // whatever is still mounted below the engine's directory so it can be removed.
    unmountBelow(dir);
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new DockerUnavailable(`dockerd exited with code ${child.exitCode}: ${tail(join(dir, 'dockerd.log'))}`);
    if (await docker(host, ['version', '--format', '{{.Server.Version}}'], { timeoutMs: 5_000 }).then(() => true, () => false)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new DockerUnavailable(`dockerd did not answer within 60 s: ${tail(join(dir, 'dockerd.log'))}`);
    }
    await sleep(250);
  }
  log(`dockerd (pid ${pid}) at ${host}`);
  return { host, pid, stop };
}

/** Lazily unmounts everything mounted below `dir`, deepest first, so the directory can be removed. */
export function unmountBelow(dir: string): void {
  const mounts = readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[1] ?? '')
    .filter((m) => m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) spawnSync('umount', ['-l', m]);
}

function tail(path: string): string {
  return existsSync(path) ? readFileSync(path, 'utf8').split('\n').slice(-15).join('\n') : '';
}
