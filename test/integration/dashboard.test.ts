// The fleet dashboard in a real browser (Debian's chromium through
// playwright-core) on a real hub with three real agents, each its own
// "cluster" on the run's control plane, plus one cluster that asked to
// register and waits. Screenshots of each view go to FLEETLET_SCREENSHOTS
// (docs/dashboard when the README's pictures are refreshed).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { createAgentRuntime } from '../../src/cli/agent-runtime.ts';
import { generateReleaseKey } from '../../src/protocol/signing.ts';
import { startHub, type RunningHub } from '../../src/hub/start-hub.ts';
import { addonsRelease, asReleaseRequest } from '../../src/testbed/sample-releases.ts';
import { accessibilityViolations, openBrowser, signIn, type BrowserSession } from '../support/browser.ts';
import { eventually, kubeConfig, testNamespace, type TestNamespace } from '../support/cluster.ts';
import { testLogger } from '../support/test-log.ts';
import { testPolicy } from '../support/test-policy.ts';
import type { Policy } from '../../src/protocol/policy.ts';

const keys = generateReleaseKey();
const adminToken = randomBytes(16).toString('hex');
// Made through the hub's API once it runs, as an admin makes them for people.
let operatorToken = '';
let viewerToken = '';
const bootstrapToken = randomBytes(32).toString('base64url');
const work = mkdtempSync(join(tmpdir(), 'fleetlet-dashboard-'));
const shots = process.env.FLEETLET_SCREENSHOTS ?? join(work, 'screenshots');
mkdirSync(shots, { recursive: true });
const logger = testLogger();

type Rollout = { phase: string; reason: string | null; counts: Record<string, number> };

/** Polls the page until `probe` holds; the assertion message says what never happened. */
async function until(page: Page, what: string, probe: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe().catch(() => false))) {
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what} (page ${page.url()})`);
    await page.waitForTimeout(200);
  }
}

const text = async (page: Page, testId: string) => (await page.getByTestId(testId).textContent()) ?? '';

describe('the fleet dashboard in a real browser', () => {
  let hub: RunningHub;
  let port = 0;
  let dashboardPort = 0;
  const stops: (() => Promise<void>)[] = [];
  const namespaces: TestNamespace[] = [];
  let operator: BrowserSession;
  let viewer: BrowserSession;
  const startTheHub = async () => {
    hub = await startHub({
      port,
      dbPath: join(work, 'hub.db'),
      releaseKey: keys.privateKey,
      adminToken,
      bootstrapTokens: [bootstrapToken],
      heartbeatMs: 500,
      rolloutTickMs: 200,
      dashboard: { port: dashboardPort },
      now: () => new Date(),
      logger,
    });
    port = hub.port;
    dashboardPort = Number(new URL(hub.dashboardUrl ?? '').port);
  };
  const api = async <T = Record<string, unknown>>(method: string, path: string, body?: unknown, token = adminToken): Promise<{ status: number; body: T }> => {
    const res = await fetch(`${hub.httpUrl}${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}) });
    return { status: res.status, body: (await res.json()) as T };
  };
  const ok = async <T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T> => {
    const res = await api<T>(method, path, body);
    if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };
  /** A real agent for cluster `id`, its own namespaces on the run's control plane; it asks to register and, with labels, is accepted and labelled. */
  const enrol = async (id: string, policy: Policy, labels: Record<string, string> | undefined) => {
    const agentNs = await testNamespace(`${id}-sys`);
    const addonsNs = await testNamespace(`${id}-app`);
    namespaces.push(agentNs, addonsNs);
    const runtime = await createAgentRuntime({
      clusterId: id,
      journalPath: join(work, `${id}.db`),
      kubeConfig: kubeConfig(),
      releaseKeys: [keys.publicKey],
      logger,
      namespace: agentNs.name,
      targetNamespace: addonsNs.name,
      policy,
      pollMs: 200,
      hub: { url: hub.url, bootstrapToken, heartbeatMs: 500, backoff: { baseMs: 100, capMs: 500 } },
      agent: { idleMs: 200 },
    });
    const controller = new AbortController();
    const running = runtime.run(controller.signal);
    stops.push(async () => (controller.abort(), await running));
    await eventually(`${id} asks to register`, async () => ((await api<{ registration: string }>('GET', `/api/v1/clusters/${id}`)).body.registration === 'Pending' ? true : undefined));
    if (labels === undefined) return;
    await ok('POST', `/api/v1/clusters/${id}/accept`);
    await ok('PUT', `/api/v1/clusters/${id}/labels`, { labels });
  };
  const release = (version: string, v: Parameters<typeof addonsRelease>[2]) => ({ ...asReleaseRequest(addonsRelease(undefined, 1, v)), version });
  const rollout = (name: string) => ok<Rollout>('GET', `/api/v1/rollouts/${name}`);
  const url = (path: string) => `${hub.dashboardUrl}${path}`;

  before(async () => {
    await startTheHub();
    operatorToken = (await ok<{ token: string }>('POST', '/api/v1/operator-tokens', { name: 'on-call', role: 'operator' })).token;
    viewerToken = (await ok<{ token: string }>('POST', '/api/v1/operator-tokens', { name: 'watcher', role: 'viewer' })).token;
    // edge-new asks to register (its labels are set by the operator only on acceptance, so it has none) and is left waiting.
    for (const [id, labels] of [
      ['canary-1', { env: 'canary' }],
      ['prod-1', { env: 'prod' }],
      ['prod-2', { env: 'prod' }],
      ['edge-new', undefined],
    ] as const) {
      await enrol(id, testPolicy(), labels);
    }
    await ok('POST', '/api/v1/rollouts', {
      name: 'install-1-0',
      strategy: { type: 'All', progressDeadline: '5m' },
      target: { kind: 'Release', release: release('1.0.0', { dns: '1.0.0', proxy: '1.0.0', metrics: '1.0.0' }) },
    });
    await eventually('every cluster on 1.0.0', async () => ((await rollout('install-1-0')).phase === 'Succeeded' ? true : undefined), 120_000);
    operator = await openBrowser();
    viewer = await openBrowser();
  });

  after(async () => {
    await operator?.close();
    await viewer?.close();
    for (const stop of stops) await stop();
    await hub?.close();
    for (const ns of namespaces) await ns.dispose();
  });

  test('a wrong token gets the sign-in page with the reason; a viewer sees the right counts, by state, by release and by label', async () => {
    const page = viewer.page;
    await page.goto(url('/'));
    await page.getByLabel('Token').fill('not-a-token-of-this-hub');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'UnknownToken' }).waitFor();
    await page.screenshot({ path: join(shots, 'sign-in.png') });

    await signIn(page, url('/'), viewerToken);
    assert.equal(await text(page, 'role'), 'viewer');
    await until(page, 'the overview to count three Succeeded clusters', async () => (await text(page, 'count-Succeeded')) === '3');
    assert.equal(await text(page, 'count-PendingRegistration'), '1');
    for (const s of ['InProgress', 'Failed', 'RolledBack', 'Unknown', 'NoRelease']) assert.equal(await text(page, `count-${s}`), '0', s);
    assert.match(await text(page, 'by-release'), /edge-addons 1\.0\.0\s*3/);
    assert.match(await text(page, 'total'), /^4 clusters/);

    await page.getByLabel('Filter by label').fill('env=prod');
    await page.getByLabel('Filter by label').press('Enter');
    await until(page, 'the filtered overview', async () => /^2 clusters matching env=prod/.test(await text(page, 'total')));
    assert.equal(await text(page, 'count-Succeeded'), '2');
    assert.equal(await text(page, 'count-PendingRegistration'), '0');
    assert.match(page.url(), /label=env%3Dprod/);

    // Relabelled on the hub while the page is open: the page follows without a reload, and back.
    await ok('PUT', '/api/v1/clusters/canary-1/labels', { labels: { env: 'prod' } });
    await until(page, 'the relabelled cluster to join env=prod on the open page', async () => /^3 clusters matching env=prod/.test(await text(page, 'total')));
    await ok('PUT', '/api/v1/clusters/canary-1/labels', { labels: { env: 'canary' } });
    await until(page, 'the cluster relabelled back to leave env=prod on the open page', async () => /^2 clusters matching env=prod/.test(await text(page, 'total')));
  });

  test('a failing canary shows as failed with its reason, and the rollout as paused; the cluster page shows why it rolled back', async () => {
    await signIn(operator.page, url('/'), operatorToken);
    await ok('POST', '/api/v1/rollouts', {
      name: 'bad-2-0',
      groups: [{ name: 'canary', mandatory: true, selector: { matchLabels: { env: 'canary' } } }],
      strategy: { type: 'ProgressivePerGroup', progressDeadline: '5m' },
      target: { kind: 'Release', release: release('2.0.0', { dns: '2.0.0', proxy: '2.0.0', metrics: '2.0.0', metricsApiSuffix: '-unready' }) },
    });
    const page = operator.page;
    await page.goto(url('/rollouts/bad-2-0'));
    await until(page, 'the rollout page to show Paused', async () => (await page.locator('h1 [data-state]').getAttribute('data-state')) === 'Paused', 150_000);
    assert.match(await text(page, 'phase-reason'), /MandatoryGroupFailed/);
    const failed = page.getByTestId('failed').locator('[data-cluster="canary-1"]');
    await failed.waitFor();
    assert.match((await failed.textContent()) ?? '', /Failed/);
    const canaryRow = page.getByTestId('members').locator('tr[data-cluster="canary-1"]');
    assert.equal(await canaryRow.getAttribute('data-status'), 'Failed');
    const reason = (await canaryRow.locator('td.why').textContent()) ?? '';
    assert.match(reason, /StageDeadlineExceeded|NotReady|Unavailable|Progress/i, `the canary's row names why it failed: ${reason}`);
    for (const id of ['prod-1', 'prod-2']) assert.equal(await page.getByTestId('members').locator(`tr[data-cluster="${id}"]`).getAttribute('data-status'), 'ToApply');
    assert.equal((await rollout('bad-2-0')).phase, 'Paused', 'the page and the API agree');
    await page.screenshot({ path: join(shots, 'rollout-paused.png'), fullPage: true });

    await page.goto(url('/'));
    await until(page, 'the overview to count the rolled-back canary', async () => (await text(page, 'count-RolledBack')) === '1');
    await page.locator('#failures').locator('xpath=..').locator('tr[data-cluster="canary-1"]').waitFor();
    await page.screenshot({ path: join(shots, 'overview.png'), fullPage: true });

    await page.goto(url('/clusters/canary-1'));
    await page.getByTestId('rollback-reason').first().waitFor();
    assert.match((await page.getByTestId('rollback-reason').first().textContent()) ?? '', /Rolled back because/);
    assert.match(await text(page, 'running'), /edge-addons 1\.0\.0/);
    // Its agent reported its own next maintenance window (heartbeat.maintenanceWindow): the test policy allows any time.
    assert.equal(await text(page, 'reported-window'), 'open now');
    await page.screenshot({ path: join(shots, 'cluster.png'), fullPage: true });

    // Cancel from the page, confirmed in its dialog.
    await page.goto(url('/rollouts/bad-2-0'));
    await page.getByRole('button', { name: 'Cancel', exact: true }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Yes, cancel' }).click();
    await eventually('the rollout to be cancelled', async () => ((await rollout('bad-2-0')).phase === 'Cancelled' ? true : undefined));
    await until(page, 'the page to show Cancelled', async () => (await page.locator('h1 [data-state]').getAttribute('data-state')) === 'Cancelled');
  });

  test('pausing and resuming from the page changes the rollout; each asks first', async () => {
    // Its hub window is closed, so the rollout waits and nothing moves but what the buttons do.
    await ok('POST', '/api/v1/rollouts', {
      name: 'windowed-2-1',
      strategy: { type: 'Progressive', maxConcurrency: 1, progressDeadline: '5m' },
      window: { cron: '0 3 1 1 *', duration: '1h', timeZone: 'UTC' },
      target: { kind: 'Release', release: release('2.1.0', { dns: '2.1.0', proxy: '2.1.0', metrics: '2.1.0' }) },
    });
    const page = operator.page;
    // The overview lists it among the active rollouts (asked for apart from the counts).
    await page.goto(url('/'));
    const active = page.locator('[data-testid="rollouts"] tr[data-rollout="windowed-2-1"]');
    await active.waitFor();
    assert.match((await active.textContent()) ?? '', /Progressing.*closed; opens/s);
    await active.getByRole('link', { name: 'windowed-2-1' }).click();
    await until(page, 'the rollout page', async () => (await page.locator('h1 [data-state]').getAttribute('data-state')) === 'Progressing');
    assert.match(await text(page, 'window'), /closed; opens in/);

    await page.getByRole('button', { name: 'Pause', exact: true }).click();
    const dialog = page.getByRole('dialog');
    assert.match((await dialog.textContent()) ?? '', /Pause rollout windowed-2-1\?/);
    // Saying no changes nothing.
    await dialog.getByRole('button', { name: 'No, keep it as it is' }).click();
    assert.equal((await rollout('windowed-2-1')).phase, 'Progressing');

    await page.getByRole('button', { name: 'Pause', exact: true }).click();
    await dialog.getByRole('button', { name: 'Yes, pause' }).click();
    await eventually('the rollout to be paused', async () => ((await rollout('windowed-2-1')).phase === 'Paused' ? true : undefined));
    assert.equal((await rollout('windowed-2-1')).reason, 'PausedByOperator');
    await until(page, 'the page to show Paused', async () => (await page.locator('h1 [data-state]').getAttribute('data-state')) === 'Paused');
    await page.screenshot({ path: join(shots, 'rollout-windowed.png'), fullPage: true });

    // Resume with the keyboard alone: focus the button, Enter opens the dialog, whose first button has the focus.
    await page.getByRole('button', { name: 'Resume', exact: true }).focus();
    await page.keyboard.press('Enter');
    await dialog.waitFor();
    assert.equal(await page.locator(':focus').textContent(), 'Yes, resume');
    await page.keyboard.press('Enter');
    await eventually('the rollout to progress again', async () => ((await rollout('windowed-2-1')).phase === 'Progressing' ? true : undefined));
    await until(page, 'the page to show Progressing', async () => (await page.locator('h1 [data-state]').getAttribute('data-state')) === 'Progressing');
    // Each action is in the hub's audit table under the token's name; the refused "no" changed nothing and sent nothing.
    const audit = (await ok<{ entries: { actor: string; role: string; path: string; status: number }[] }>('GET', '/api/v1/audit?limit=1000')).entries.filter((e) => e.path.startsWith('/api/rollouts/windowed-2-1/'));
    assert.deepEqual(audit.map((e) => [e.actor, e.role, e.path, e.status]), [
      ['on-call', 'operator', '/api/rollouts/windowed-2-1/pause', 200],
      ['on-call', 'operator', '/api/rollouts/windowed-2-1/resume', 200],
    ]);
  });

  test('a viewer sees no action buttons, and both APIs refuse its writes anyway', async () => {
    const page = viewer.page;
    await page.goto(url('/rollouts/windowed-2-1'));
    await page.getByTestId('view-only').waitFor();
    assert.equal(await page.getByTestId('actions').count(), 0);
    for (const name of ['Pause', 'Resume', 'Cancel', 'Roll back']) assert.equal(await page.getByRole('button', { name, exact: true }).count(), 0, `no ${name} button`);
    await page.goto(url('/clusters/edge-new'));
    await page.locator('h1').filter({ hasText: 'edge-new' }).waitFor();
    assert.equal(await page.getByRole('button', { name: 'Accept', exact: true }).count(), 0);

    // The dashboard's own endpoint, with the viewer's session cookie, as the page would send it.
    const refused = await page.evaluate(async () => {
      const res = await fetch('/api/rollouts/windowed-2-1/pause', { method: 'POST', headers: { 'x-fleetlet-dashboard': '1', 'content-type': 'application/json' }, body: '{}' });
      return { status: res.status, body: (await res.json()) as { error: { reason: string } } };
    });
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error.reason, 'Forbidden');
    const audited = (await ok<{ entries: { actor: string; role: string; path: string; status: number }[] }>('GET', '/api/v1/audit?limit=1000')).entries.at(-1);
    assert.deepEqual(audited && [audited.actor, audited.role, audited.path, audited.status], ['watcher', 'viewer', '/api/rollouts/windowed-2-1/pause', 403], 'the refusal is audited');
    // The hub's operator API.
    const direct = await api('POST', '/api/v1/rollouts/windowed-2-1/pause', undefined, viewerToken);
    assert.ok(direct.status === 401 || direct.status === 403, `the operator API refused the viewer: ${direct.status}`);
    const accept = await api('POST', '/api/v1/clusters/edge-new/accept', undefined, viewerToken);
    assert.ok(accept.status === 401 || accept.status === 403);
    assert.equal((await rollout('windowed-2-1')).phase, 'Progressing', 'nothing changed');
    assert.equal((await api<{ registration: string }>('GET', '/api/v1/clusters/edge-new')).body.registration, 'Pending');
  });

  test('every view passes an automated WCAG 2.1 AA audit (axe-core: contrast, names, roles, keyboard)', async () => {
    const audit = await openBrowser({ bypassCSP: true });
    try {
      const page = audit.page;
      await signIn(page, url('/'), operatorToken);
      const views: [string, string][] = [
        ['/', '[data-testid="by-state"]'],
        ['/rollouts', '[data-testid="rollouts"]'],
        ['/rollouts/bad-2-0', '[data-testid="members"]'],
        ['/clusters/canary-1', '[data-attempt]'],
        ['/clusters', 'tr[data-cluster]'],
        ['/hotfixes', 'h1'],
      ];
      for (const [path, ready] of views) {
        await page.goto(url(path));
        await page.locator(ready).first().waitFor();
        const violations = await accessibilityViolations(page);
        assert.deepEqual(violations, [], `${path}: ${JSON.stringify(violations, null, 1)}`);
      }
      await page.goto(url('/rollouts/windowed-2-1'));
      await page.getByRole('button', { name: 'Cancel', exact: true }).click();
      await page.getByRole('dialog').waitFor();
      assert.deepEqual(await accessibilityViolations(page), [], 'the confirmation dialog');
      await page.keyboard.press('Escape');
      await page.getByRole('dialog').waitFor({ state: 'hidden' });
      assert.equal((await rollout('windowed-2-1')).phase, 'Progressing', 'Escape cancelled nothing');
      await ok('POST', '/api/v1/rollouts/windowed-2-1/cancel');
    } finally {
      await audit.close();
    }
  });

  test('a hotfix override issued to the real agents: the hotfix view lists it and every cluster running it', async () => {
    await ok('POST', '/api/v1/rollouts', {
      name: 'fix-dns',
      // The prod clusters: they run and are meant to run 1.0.0 (the canary's desired release is still the cancelled 2.0.0).
      selector: { matchLabels: { env: 'prod' } },
      strategy: { type: 'All', progressDeadline: '5m' },
      target: { kind: 'Override', override: { name: 'cve-dns', version: '1.0.0-hf1', description: 'DNS cache poisoning fix', appliesTo: { releaseName: 'edge-addons', versions: ['1.0.0'] }, component: 'dns', images: { dns: 'registry.example/dns:1.0.0-hf1' } } },
    });
    const done = await eventually('the override rollout to end', async () => {
      const r = await rollout('fix-dns');
      return ['Succeeded', 'Completed', 'Paused', 'Failed', 'Cancelled'].includes(r.phase) ? r : undefined;
    }, 240_000).catch(async (err: unknown) => {
      throw new Error(`${(err as Error).message}; the rollout: ${JSON.stringify(await rollout('fix-dns'))}`);
    });
    assert.ok(done.phase === 'Succeeded' || done.phase === 'Completed', `the override rollout ended ${done.phase}: ${JSON.stringify(done)}`);
    const page = operator.page;
    await page.goto(url('/hotfixes'));
    const card = page.locator('section[data-override="cve-dns"]');
    await card.waitFor();
    // The agents apply it and report it in their inventories: the open page follows without a reload.
    await until(page, 'the hotfix view to count two clusters running cve-dns', async () => /^2 clusters/.test(await text(page, 'count-cve-dns')));
    assert.match((await card.textContent()) ?? '', /edge-addons 1\.0\.0/);
    assert.match((await card.textContent()) ?? '', /dns → registry\.example\/dns:1\.0\.0-hf1/);
    await card.getByRole('link', { name: 'Show the clusters running cve-dns' }).click();
    const running = page.getByTestId('running-cve-dns');
    await running.locator('tr[data-cluster]').nth(1).waitFor();
    assert.deepEqual(await running.locator('tr[data-cluster]').evaluateAll((rows) => rows.map((r) => [r.getAttribute('data-cluster'), r.querySelector('td')?.textContent])), [
      ['prod-1', '1.0.0-hf1'],
      ['prod-2', '1.0.0-hf1'],
    ]);
    await page.screenshot({ path: join(shots, 'hotfixes.png'), fullPage: true });
    // The page and the hub's API agree.
    const api_ = await ok<{ clusters: { clusterId: string }[] }>('GET', '/api/v1/overrides/cve-dns/clusters?state=running');
    assert.deepEqual(api_.clusters.map((c) => c.clusterId).sort(), ['prod-1', 'prod-2']);
  });

  test('a cluster whose own maintenance window is closed waits for it: the overview lists it with its next window, its page says when it opens', async () => {
    // The agent's policy opens a window every day 12 hours from now (UTC), so it is closed whenever this runs.
    const now = new Date();
    const opensHour = (now.getUTCHours() + 12) % 24;
    let opens = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate(), opensHour);
    if (opens <= now.getTime()) opens += 86_400_000;
    // As the page writes a time (web/src/format.ts time()).
    const opensText = new Date(opens).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
    await enrol('maint-1', testPolicy({ timeZone: 'UTC', windows: [{ name: 'nightly', cron: `0 ${opensHour} * * *`, duration: '2h' }] }), { env: 'maint' });
    await ok('POST', '/api/v1/rollouts', {
      name: 'maint-1-0',
      selector: { matchLabels: { env: 'maint' } },
      strategy: { type: 'All', progressDeadline: '1h' },
      target: { kind: 'Release', release: release('1.0.0', { dns: '1.0.0', proxy: '1.0.0', metrics: '1.0.0' }) },
    });
    const page = viewer.page;
    await page.goto(url('/'));
    // The open overview follows as the agent receives the release and its gate holds it (no reload).
    const waiting = page.locator('#waiting').locator('xpath=..');
    const row = waiting.locator('tr[data-cluster="maint-1"]');
    await row.waitFor({ timeout: 60_000 });
    assert.match((await row.locator('td.why').textContent()) ?? '', /1\.0\.0 WaitingForWindow/);
    assert.match((await row.locator('td.why').textContent()) ?? '', new RegExp(`next window opens at ${new Date(opens).toISOString()}`), 'the agent\'s own reason, with when its window opens');
    const next = (await row.getByTestId('next-window').textContent()) ?? '';
    assert.match(next, /^opens in (11|12)h \d+m/, `the next window as the agent reported it: ${next}`);
    assert.ok(next.includes(opensText), `${next} names ${opensText}`);
    assert.equal(await text(page, 'waiting-count'), '1 cluster waits for its maintenance window.');
    // In progress once its lease is stored (within a second of its hello; Unknown until then), told to the open page.
    await until(page, 'the waiting cluster to count as In progress', async () => (await text(page, 'count-InProgress')) === '1');
    await page.screenshot({ path: join(shots, 'overview-waiting.png'), fullPage: true });

    await row.getByRole('link', { name: 'maint-1' }).click();
    await page.locator('h1').filter({ hasText: 'maint-1' }).waitFor();
    const reported = await text(page, 'reported-window');
    assert.match(reported, /^opens in (11|12)h \d+m/);
    assert.ok(reported.includes(opensText), `${reported} names ${opensText}`);
    const agentWindow = page.getByTestId('agent-window');
    assert.equal(await agentWindow.locator('[data-state]').first().getAttribute('data-state'), 'WaitingForWindow');
    assert.match((await agentWindow.textContent()) ?? '', new RegExp(`next opens in (11|12)h \\d+m \\(${opensText}\\)`));
    await page.screenshot({ path: join(shots, 'cluster-waiting.png'), fullPage: true });
    // The hub and the page agree.
    const view = await ok<{ upgrade?: { phase: string } }>('GET', '/api/v1/clusters/maint-1');
    assert.equal(view.upgrade?.phase, 'WaitingForWindow');
  });

  test('the hub unreachable: the page says so, and reconnects by itself when it is back', async () => {
    const page = viewer.page;
    await page.goto(url('/'));
    await until(page, 'the overview', async () => (await text(page, 'count-Succeeded')) !== '');
    await hub.close();
    await page.getByTestId('unreachable').waitFor({ timeout: 15_000 });
    await page.screenshot({ path: join(shots, 'unreachable.png') });
    await startTheHub();
    await page.getByTestId('unreachable').waitFor({ state: 'detached', timeout: 30_000 });
    await until(page, 'the overview after reconnecting', async () => (await text(page, 'count-Succeeded')) === '2' || (await text(page, 'count-Succeeded')) === '3');
    assert.equal(await text(page, 'role'), 'viewer', 'still signed in');
  });
});
