// fleetlet's image, built by the run's private Docker engine from the
// repository's own Dockerfile, exactly as `docker build .` builds it.
//
// No registry can be reached here, so the Dockerfile's base image is imported
// first from the local stand-in scripts/build-base-image.sh made (debootstrap
// + Node from its npm package), under the Dockerfile's own tag. The build
// reaches the npm registry through this machine's TLS-intercepting proxy: the
// host's CA bundle goes in as a build secret, which is never stored in a layer.
//
// The global set-up starts the build in the background; test files wait for
// the status file it writes (one build per run, shared by every file).
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { cacheDir } from '../../src/testbed/control-plane.ts';
import { docker } from './docker-engine.ts';

const repo = new URL('../../', import.meta.url).pathname;
export const IMAGE_TAG = 'fleetlet.local/fleetlet:test';
const HOST_CA = process.env.FLEETLET_BUILD_CA ?? '/etc/ssl/certs/ca-certificates.crt';

export function dockerfileBaseImage(): string {
  const from = /^FROM\s+(\S+)/m.exec(readFileSync(join(repo, 'Dockerfile'), 'utf8'))?.[1];
  if (!from) throw new Error('the Dockerfile has no FROM line');
  return from;
}

export async function importBaseImage(host: string): Promise<string> {
  const tag = dockerfileBaseImage();
  const dir = join(cacheDir(), `base-image-${tag.replace(/[:/]/g, '_')}`);
  if (!existsSync(join(dir, 'rootfs.tar'))) throw new Error(`${dir}/rootfs.tar is missing: run \`npm run setup\` (scripts/build-base-image.sh builds it)`);
  const meta = JSON.parse(readFileSync(join(dir, 'image.json'), 'utf8')) as { tag: string; changes: string[] };
  await docker(host, ['import', ...meta.changes.flatMap((c) => ['--change', c]), join(dir, 'rootfs.tar'), tag], { timeoutMs: 300_000 });
  return tag;
}

export async function buildImage(host: string, tag = IMAGE_TAG, opts: { buildArgs?: Record<string, string> } = {}): Promise<{ tag: string; log: string }> {
  const args = ['build', '--network=host', '--progress=plain', '-t', tag];
  if (existsSync(HOST_CA)) args.push('--secret', `id=ca-certificates,src=${HOST_CA}`);
  for (const [k, v] of Object.entries(opts.buildArgs ?? {})) args.push('--build-arg', `${k}=${v}`);
  const res = await docker(host, [...args, repo], { env: { DOCKER_BUILDKIT: '1' }, timeoutMs: 1_200_000 });
  return { tag, log: res.stderr + res.stdout };
}

/** Status file the global set-up writes when the build ends. */
export const imageStatusFile = (dir: string) => join(dir, 'fleetlet-image.json');

export interface ImageStatus {
  ok: boolean;
  tag?: string;
  error?: string;
  buildLog?: string;
  /** Where the build log was written. */
  logPath?: string;
  ms: number;
}

export async function buildForRun(host: string, dir: string): Promise<ImageStatus> {
  const started = Date.now();
  let status: ImageStatus;
  try {
    await importBaseImage(host);
    const { tag, log } = await buildImage(host);
    await writeFile(join(dir, 'fleetlet-image-build.log'), log);
    status = { ok: true, tag, logPath: join(dir, 'fleetlet-image-build.log'), ms: Date.now() - started };
  } catch (err) {
    status = { ok: false, error: String(err instanceof Error ? err.message : err), ms: Date.now() - started };
  }
  await writeFile(imageStatusFile(dir), JSON.stringify(status));
  return status;
}

/** In a test: the run's image, once its build finished; a failed build fails the caller with the build's error. */
export async function runImage(): Promise<{ host: string; tag: string; buildLogPath: string }> {
  const host = process.env.FLEETLET_TEST_DOCKER_HOST;
  const dir = process.env.FLEETLET_TEST_CP_DIR;
  if (!host || !dir) throw new Error('FLEETLET_TEST_DOCKER_HOST is not set: run tests through `npm test` (its global set-up starts the Docker engine)');
  const file = imageStatusFile(dir);
  const deadline = Date.now() + 1_500_000;
  while (!existsSync(file)) {
    if (Date.now() > deadline) throw new Error(`the image build did not finish within 25 minutes (${file})`);
    await sleep(500);
  }
  const status = JSON.parse(readFileSync(file, 'utf8')) as ImageStatus;
  if (!status.ok || !status.tag) throw new Error(`docker build failed: ${status.error}`);
  return { host, tag: status.tag, buildLogPath: status.logPath ?? '' };
}
