import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { watchPolicyFile, type LoadedPolicy, type PolicyFileError, type PolicyWatch } from '../../src/agent/gate/policy-loader.ts';

const policyYaml = (cron: string, name = 'nightly') =>
  ['apiVersion: fleetlet.io/v1', 'kind: MaintenancePolicy', 'timeZone: UTC', 'windows:', `  - name: ${name}`, `    cron: "${cron}"`, '    duration: 2h', ''].join('\n');

async function waitFor(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Lays out a directory the way the kubelet mounts a ConfigMap:
 *   policy.yaml -> ..data/policy.yaml, ..data -> ..<version>/
 * and updates it the way the kubelet does: new version directory, a
 * ..data_tmp symlink to it, renamed over ..data in one step.
 */
class ConfigMapDir {
  readonly dir: string;
  #version = 0;
  #current: string | undefined;
  constructor(dir: string) {
    this.dir = dir;
  }
  get file(): string {
    return join(this.dir, 'policy.yaml');
  }
  async publish(content: string): Promise<void> {
    const version = `..2026_05_05_12_00_0${++this.#version}`;
    await mkdir(join(this.dir, version));
    await writeFile(join(this.dir, version, 'policy.yaml'), content);
    await symlink(version, join(this.dir, '..data_tmp'));
    await rename(join(this.dir, '..data_tmp'), join(this.dir, '..data'));
    if (this.#current === undefined) await symlink(join('..data', 'policy.yaml'), this.file);
    else await rm(join(this.dir, this.#current), { recursive: true });
    this.#current = version;
  }
}

describe('policy loader', () => {
  let dir: string;
  let ac: AbortController;
  let loaded: LoadedPolicy[];
  let invalid: PolicyFileError[];
  const now = () => new Date('2026-05-05T12:00:00Z');

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetlet-policy-'));
    ac = new AbortController();
    loaded = [];
    invalid = [];
  });
  afterEach(async () => {
    ac.abort();
    await rm(dir, { recursive: true, force: true });
  });

  const start = (path: string): Promise<PolicyWatch> =>
    watchPolicyFile({
      path,
      signal: ac.signal,
      now,
      debounceMs: 20,
      pollIntervalMs: 0, // events only, so the tests prove the watch works
      onPolicy: (p) => loaded.push(p),
      onInvalid: (e) => invalid.push(e),
    });

  it('follows ConfigMap symlink swaps, keeping the last valid policy through an invalid one', async () => {
    const cm = new ConfigMapDir(dir);
    await cm.publish(policyYaml('0 22 * * *'));
    const w = await start(cm.file);
    assert.equal(loaded.length, 1, 'initial load happens before watchPolicyFile resolves');
    assert.equal(w.current()?.policy.windows?.[0]?.cron, '0 22 * * *');
    assert.match(w.current()?.digest ?? '', /^[0-9a-f]{64}$/);
    assert.deepEqual(w.current()?.loadedAt, now());

    await cm.publish(policyYaml('0 22 * * *').replace('duration: 2h', 'duration: 2h\n  - name: broken\n    cron: "0 24 * * *"\n    duration: 1h'));
    await waitFor('onInvalid', () => invalid.length === 1);
    const err = invalid[0];
    assert.equal(err?.issues[0]?.path, 'windows[1].cron');
    assert.match(err?.issues[0]?.message ?? '', /hour field: 24 is a invalid expression for hour/);
    assert.equal(err?.issues[0]?.line, 9);
    assert.match(err?.reason ?? '', /last valid policy stays in force/);
    assert.equal(w.current()?.policy.windows?.[0]?.cron, '0 22 * * *', 'the last valid policy stays in force');
    assert.equal(w.lastError(), err);
    assert.equal(loaded.length, 1);

    await cm.publish(policyYaml('0 23 * * *', 'later'));
    await waitFor('onPolicy for the fixed file', () => loaded.length === 2);
    assert.equal(w.current()?.policy.windows?.[0]?.name, 'later');
    assert.equal(w.lastError(), undefined);
    assert.equal(invalid.length, 1);
  });

  it('picks up a plain file rewritten in place and reports a deleted file', async () => {
    const file = join(dir, 'policy.yaml');
    await writeFile(file, policyYaml('0 1 * * *'));
    const w = await start(file);
    assert.equal(loaded.length, 1);

    await writeFile(file, policyYaml('0 2 * * *'));
    await waitFor('onPolicy after rewrite', () => loaded.length === 2);
    assert.equal(w.current()?.policy.windows?.[0]?.cron, '0 2 * * *');

    await rm(file);
    await waitFor('onInvalid after delete', () => invalid.length === 1);
    assert.equal(invalid[0]?.issues[0]?.message, 'the file does not exist');
    assert.equal(w.current()?.policy.windows?.[0]?.cron, '0 2 * * *');
  });

  it('starts without a policy when the first file is invalid, and reports each distinct content once', async () => {
    const file = join(dir, 'policy.yaml');
    await writeFile(file, 'apiVersion: fleetlet.io/v1\nkind: MaintenancePolicy\nwindows: []\nblackuts: []\n');
    const w = await start(file);
    assert.equal(w.current(), undefined);
    assert.equal(invalid.length, 1);
    assert.equal(invalid[0]?.issues[0]?.path, 'blackuts');
    await w.reload();
    await w.reload();
    assert.equal(invalid.length, 1, 'unchanged content is not reported again');
  });

  it('stops following changes when the signal aborts', async () => {
    const file = join(dir, 'policy.yaml');
    await writeFile(file, policyYaml('0 1 * * *'));
    await start(file);
    ac.abort();
    await writeFile(file, policyYaml('0 3 * * *'));
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(loaded.length, 1);
  });

  it('a throwing callback does not stop the watch', async () => {
    const file = join(dir, 'policy.yaml');
    await writeFile(file, policyYaml('0 1 * * *'));
    let calls = 0;
    const w = await watchPolicyFile({
      path: file,
      signal: ac.signal,
      now,
      debounceMs: 20,
      pollIntervalMs: 0,
      onPolicy: () => {
        calls++;
        throw new Error('consumer bug');
      },
      onInvalid: () => undefined,
    });
    await writeFile(file, policyYaml('0 4 * * *'));
    await waitFor('second onPolicy', () => calls === 2);
    assert.equal(w.current()?.policy.windows?.[0]?.cron, '0 4 * * *');
  });
});
