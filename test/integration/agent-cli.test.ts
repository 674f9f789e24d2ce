// `fleetlet agent` as a process against the real control plane: what it says
// and how it exits when it cannot do what it was started for.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { exportPublicKeyPem } from '../../src/protocol/signing.ts';
import { testNamespace } from '../support/cluster.ts';
import { addonsRelease, testSigner } from '../support/releases.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));

function agent(args: string[], timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string; hung: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(root, 'bin/fleetlet.ts'), 'agent', `--kubeconfig=${process.env.FLEETLET_TEST_KUBECONFIG}`, '--poll-ms=200', ...args], {
      env: { ...process.env, LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let hung = false;
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      hung = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, hung });
    });
  });
}

test('--exit-when-done with a refused release file exits 3 at once instead of waiting forever', async () => {
  const ns = await testNamespace('cli');
  const dir = mkdtempSync(join(tmpdir(), 'fleetlet-agent-cli-'));
  try {
    const trusted = testSigner();
    const stranger = testSigner();
    writeFileSync(join(dir, 'key.pub.pem'), exportPublicKeyPem(trusted.publicKey));
    writeFileSync(join(dir, 'v1.json'), JSON.stringify(stranger.sign(addonsRelease(ns.name, 1, { dns: '1.0.0', proxy: '1.0.0', metrics: '1.0.0' }))));
    const r = await agent(['--cluster-id=cli', `--journal=${join(dir, 'j.db')}`, `--namespace=${ns.name}`, `--allowed-namespaces=${ns.name}`, `--release-key=${join(dir, 'key.pub.pem')}`, `--release-file=${join(dir, 'v1.json')}`, '--exit-when-done']);
    assert.equal(r.hung, false, `the agent did not exit: ${r.stdout}`);
    assert.equal(r.code, 3, r.stdout + r.stderr);
    assert.match(r.stdout, /"reason":"UnknownKey"[^\n]*release file refused/);
  } finally {
    await ns.dispose();
  }
});

test('a missing agent namespace is named at start-up and the agent exits 1 instead of retrying forever', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fleetlet-agent-cli-'));
  const signer = testSigner();
  writeFileSync(join(dir, 'key.pub.pem'), exportPublicKeyPem(signer.publicKey));
  const r = await agent(['--cluster-id=cli', `--journal=${join(dir, 'j.db')}`, '--namespace=no-such-namespace-here', '--allowed-namespaces=addons', `--release-key=${join(dir, 'key.pub.pem')}`]);
  assert.equal(r.hung, false, `the agent did not exit: ${r.stdout}`);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /the agent's namespace \\"no-such-namespace-here\\" does not exist: create it \(kubectl create namespace no-such-namespace-here\) or pass --namespace/);
});
