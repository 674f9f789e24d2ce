// One real control plane per `npm test` run (node --test-global-setup).
// Test files run in child processes that inherit the environment set here.
// A control plane that cannot be built or started fails the run: it is
// never skipped, so a green run always means the cluster tests ran.
// The production bundles are built here too: tests that start agent
// processes run dist/agent.mjs as the image does (scripts/build.ts imageAgentArgv).
import { buildBundles } from '../../scripts/build.ts';
import { startControlPlane, type ControlPlane } from '../../src/testbed/control-plane.ts';

let cp: ControlPlane | undefined;

export async function globalSetup(): Promise<void> {
  const built = Date.now();
  await buildBundles();
  process.stderr.write(`# bundles: dist/ built in ${Date.now() - built} ms\n`);
  const started = Date.now();
  cp = await startControlPlane({ nodes: 3, log: (l) => process.stderr.write(`# control-plane: ${l}\n`) });
  process.env.FLEETLET_TEST_KUBECONFIG = cp.kubeconfigPath;
  process.env.FLEETLET_TEST_KUBE_VERSION = cp.kubeVersion;
  process.env.FLEETLET_TEST_CP_DIR = cp.dir;
  process.stderr.write(
    `# control-plane: kube-apiserver ${cp.kubeVersion}, etcd ${cp.binaries.etcdVersion}, kwok ${cp.binaries.kwokVersion}; up in ${Date.now() - started} ms\n`,
  );
}

export async function globalTeardown(): Promise<void> {
  await cp?.stop();
}
