// The real kubectl (built from the same Kubernetes module and version as the
// test API server by scripts/build-control-plane.sh), run against the run's
// control plane: manifests are rendered and applied as users do it.
import { spawn } from 'node:child_process';
import { loadBinaries } from '../../src/testbed/control-plane.ts';

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs kubectl; `kubeconfig` defaults to the run's admin kubeconfig. Never throws on a non-zero exit: check `code`. */
export function kubectlRun(args: string[], opts: { kubeconfig?: string; input?: string; cwd?: string; env?: Record<string, string> } = {}): Promise<KubectlResult> {
  const kubeconfig = opts.kubeconfig ?? process.env.FLEETLET_TEST_KUBECONFIG;
  if (!kubeconfig) throw new Error('FLEETLET_TEST_KUBECONFIG is not set: run tests through `npm test` (it starts the control plane)');
  return new Promise((resolve, reject) => {
    const child = spawn(loadBinaries().kubectl, args, { cwd: opts.cwd, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/', KUBECONFIG: kubeconfig, ...opts.env } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(opts.input);
  });
}

/** kubectl that must succeed; its stdout. */
export async function kubectl(args: string[], opts: Parameters<typeof kubectlRun>[1] = {}): Promise<string> {
  const res = await kubectlRun(args, opts);
  if (res.code !== 0) throw new Error(`kubectl ${args.join(' ')} exited ${res.code}: ${res.stderr}${res.stdout}`);
  return res.stdout;
}
