// The release workflow publishes what docs/deploy.md and the issue promise:
// one multi-arch image (amd64 and arm64) built from the repository's
// Dockerfile, with an SBOM and provenance, tested on both architectures.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { parse } from 'yaml';

type Step = { uses?: string; run?: string; with?: Record<string, unknown> };

test('release workflow: buildx for linux/amd64 and linux/arm64, SBOM, provenance, both architectures run', () => {
  const wf = parse(readFileSync(new URL('../../.github/workflows/release.yml', import.meta.url), 'utf8')) as { on: { push: { tags: string[] } }; jobs: Record<string, { steps: Step[]; permissions: Record<string, string> }> };
  assert.deepEqual(wf.on.push.tags, ['v*.*.*']);
  const job = wf.jobs.image!;
  const build = job.steps.find((s) => s.uses?.startsWith('docker/build-push-action@'));
  assert.ok(build?.with, 'a build-push step');
  assert.equal(build.with.context, '.');
  assert.deepEqual(String(build.with.platforms).split(','), ['linux/amd64', 'linux/arm64']);
  assert.equal(build.with.sbom, true);
  assert.equal(build.with.provenance, 'mode=max');
  assert.equal(build.with.push, true);
  assert.ok(job.steps.some((s) => s.uses?.startsWith('docker/setup-qemu-action@')), 'QEMU for the arm64 build');
  assert.ok(job.steps.some((s) => s.uses?.startsWith('actions/attest-build-provenance@')));
  assert.equal(job.permissions.packages, 'write');
  const smoke = job.steps.find((s) => s.run?.includes('--platform'))?.run ?? '';
  for (const cmd of ['agent --help', 'hub --help']) assert.ok(smoke.includes(cmd), `smoke test runs ${cmd}`);
});
