// One real control plane and one private Docker engine per `npm test` run
// (node --test-global-setup). Test files run in child processes that inherit
// the environment set here. A control plane or engine that cannot be built or
// started fails the run: it is never skipped, so a green run always means the
// cluster and image tests ran.
// The production bundles are built here too: tests that start agent
// processes run dist/agent.mjs as the image does (scripts/build.ts imageAgentArgv).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildBundles } from '../../scripts/build.ts';
import { startControlPlane, type ControlPlane } from '../../src/testbed/control-plane.ts';
import { startDockerEngine, type DockerEngine } from './docker-engine.ts';
import { buildForRun } from './fleetlet-image.ts';

let cp: ControlPlane | undefined;
let engine: DockerEngine | undefined;
let engineDir: string | undefined;
let imageBuild: Promise<unknown> | undefined;

export async function globalSetup(): Promise<void> {
  const built = Date.now();
  await buildBundles();
  process.stderr.write(`# bundles: dist/ built in ${Date.now() - built} ms\n`);
  const started = Date.now();
  engineDir = await mkdtemp(join(tmpdir(), 'fleetlet-docker-'));
  const log = (l: string) => process.stderr.write(`# control-plane: ${l}\n`);
  const [cpResult, engineResult] = await Promise.allSettled([startControlPlane({ nodes: 3, log }), startDockerEngine(engineDir, (l) => process.stderr.write(`# docker: ${l}\n`))]);
  if (cpResult.status === 'rejected' || engineResult.status === 'rejected') {
    // Whatever did start is stopped by its pid; the run fails with the first error.
    if (cpResult.status === 'fulfilled') await cpResult.value.stop();
    if (engineResult.status === 'fulfilled') await engineResult.value.stop();
    await rm(engineDir, { recursive: true, force: true }).catch(() => {});
    throw cpResult.status === 'rejected' ? cpResult.reason : (engineResult as PromiseRejectedResult).reason;
  }
  [cp, engine] = [cpResult.value, engineResult.value];
  process.env.FLEETLET_TEST_KUBECONFIG = cp.kubeconfigPath;
  process.env.FLEETLET_TEST_KUBE_VERSION = cp.kubeVersion;
  process.env.FLEETLET_TEST_CP_DIR = cp.dir;
  process.env.FLEETLET_TEST_DOCKER_HOST = engine.host;
  process.stderr.write(
    `# control-plane: kube-apiserver ${cp.kubeVersion}, etcd ${cp.binaries.etcdVersion}, kwok ${cp.binaries.kwokVersion}; up in ${Date.now() - started} ms\n`,
  );
  // The image builds while the other tests run; image tests wait for it.
  imageBuild = buildForRun(engine.host, cp.dir).then((s) => process.stderr.write(`# docker: fleetlet image ${s.ok ? `built in ${s.ms} ms` : `build failed after ${s.ms} ms`}\n`));
}

export async function globalTeardown(): Promise<void> {
  await imageBuild;
  await engine?.stop();
  if (engineDir) await rm(engineDir, { recursive: true, force: true });
  await cp?.stop();
}
