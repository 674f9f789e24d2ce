// The complete release of docs/protocol.md, as a user would ship it: signed
// with `fleetlet sign`, applied by `fleetlet agent --release-file` to the real
// control plane.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { exportPrivateKeyPem, exportPublicKeyPem, generateReleaseKey } from '../../src/protocol/signing.ts';
import { testNamespace } from '../support/cluster.ts';
import { docBlocks, readDoc } from '../support/doc-blocks.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const fleetlet = (args: string[]) => spawnSync(process.execPath, [join(root, 'bin/fleetlet.ts'), ...args], { encoding: 'utf8', env: { ...process.env, LOG_LEVEL: 'warn' }, timeout: 240_000 });

test('the release of docs/protocol.md signs with fleetlet sign and an agent applies it', async () => {
  const ns = await testNamespace('doc');
  const dir = mkdtempSync(join(tmpdir(), 'fleetlet-doc-release-'));
  try {
    const [yaml] = docBlocks(readDoc('protocol.md'), 'release', 'yaml');
    assert.ok(yaml, 'the page has its release');
    writeFileSync(join(dir, 'release.yaml'), yaml.replaceAll('namespace: edge-addons', `namespace: ${ns.name}`));
    const key = generateReleaseKey();
    writeFileSync(join(dir, 'hub-key.pem'), exportPrivateKeyPem(key.privateKey));
    writeFileSync(join(dir, 'hub-key.pub.pem'), exportPublicKeyPem(key.publicKey));

    const signed = fleetlet(['sign', '--key', join(dir, 'hub-key.pem'), '--ttl', '1h', '--out', join(dir, 'release.json'), join(dir, 'release.yaml')]);
    assert.equal(signed.status, 0, signed.stderr);
    const run = fleetlet([
      'agent',
      '--cluster-id=doc',
      `--journal=${join(dir, 'journal.db')}`,
      `--kubeconfig=${process.env.FLEETLET_TEST_KUBECONFIG}`,
      `--namespace=${ns.name}`,
      `--allowed-namespaces=${ns.name}`,
      `--release-key=${join(dir, 'hub-key.pub.pem')}`,
      `--release-file=${join(dir, 'release.json')}`,
      '--poll-ms=200',
      '--exit-when-done',
    ]);
    assert.equal(run.status, 0, `${run.stdout}\n${run.stderr}`);
    const d = await ns.apps.readNamespacedDeployment({ name: 'dns', namespace: ns.name });
    assert.equal(d.spec?.template.spec?.containers[0]?.image, 'registry.example/dns:1.1.0');
    const cm = await ns.core.readNamespacedConfigMap({ name: 'dns-config', namespace: ns.name });
    assert.deepEqual(cm.data, { version: '1.1.0' });
    const status = fleetlet(['status', `--journal=${join(dir, 'journal.db')}`, '--json']);
    assert.equal(status.status, 0, status.stderr);
    assert.equal((JSON.parse(status.stdout) as { attempts: { phase: string }[] }).attempts[0]?.phase, 'Succeeded');
  } finally {
    await ns.dispose();
  }
});
