// The dashboard with 10,000 clusters: a hub database seeded with a fleet of
// every state (test/support/fleet-seed.ts) and one rollout over all of it
// (its window closed, so nothing moves), served by a real hub; a real
// headless chromium loads each view. Times are from navigation start to the
// view's numbers on screen (performance.now() in the page), and the
// server's own answer time for each view's JSON. The server reuses an answer
// for up to 2 s while nothing shown changed (src/hub/dashboard/server.ts);
// every sample here waits that out first, so none is a reused answer.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import { startHub } from '../src/hub/start-hub.ts';
import { generateReleaseKey } from '../src/protocol/signing.ts';
import { addonsRelease, asReleaseRequest } from '../src/testbed/sample-releases.ts';
import { openBrowser, signIn } from '../test/support/browser.ts';
import { fleetOf, seedFleet } from '../test/support/fleet-seed.ts';
import { loadavg } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { percentile } from './stats.ts';

/** Longer than the dashboard's reuse of an unchanged answer (OVERVIEW_REUSE_MS). */
const REUSE_EXPIRED_MS = 2100;
const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');

/** In the page: when (ms from navigation) its HTML, script and styles arrived, and when it asked for and received `api` and the session. */
function milestones(api: string): Record<string, number> {
  const perf = (globalThis as unknown as { performance: { getEntriesByType(t: string): { name: string; startTime: number; responseEnd: number; duration: number }[] } }).performance;
  const out: Record<string, number> = {};
  const nav = perf.getEntriesByType('navigation')[0];
  if (nav) out.html = Math.round(nav.responseEnd);
  for (const e of perf.getEntriesByType('mark')) if (e.name === 'fleetlet:script-run') out['script running'] = Math.round(e.startTime);
  for (const e of perf.getEntriesByType('resource')) {
    const path = new URL(e.name).pathname;
    if (path === '/assets/app.js') out.script = Math.round(e.responseEnd);
    if (path === '/api/session') out['session answered'] = Math.round(e.responseEnd);
    if (path === api && out['view asked'] === undefined) {
      out['view asked'] = Math.round(e.startTime);
      out['view answered'] = Math.round(e.responseEnd);
    }
  }
  return out;
}

export async function dashboardBench(o: { clusters: number; runs: number }): Promise<void> {
  console.log(`== dashboard: ${o.clusters} clusters, each view loaded ${o.runs} times in headless chromium (load average ${load()})`);
  const dir = mkdtempSync(join(tmpdir(), 'fleetlet-dashboard-bench-'));
  const dbPath = join(dir, 'hub.db');
  const fleet = fleetOf(o.clusters);
  let t = performance.now();
  await seedFleet(dbPath, fleet, () => new Date());
  console.log(`   seeded ${o.clusters} clusters in ${Math.round(performance.now() - t)} ms`);
  const adminToken = 'bench-admin-token-0123456789';
  const hub = await startHub({
    port: 0,
    dbPath,
    releaseKey: generateReleaseKey().privateKey,
    adminToken,
    bootstrapTokens: [],
    // Long enough that no seeded cluster changes availability while measured.
    heartbeatMs: 600_000,
    dashboard: { port: 0 },
    now: () => new Date(),
    logger: pino({ level: 'silent' }),
  });
  const browser = await openBrowser();
  try {
    t = performance.now();
    const res = await fetch(`${hub.httpUrl}/api/v1/rollouts`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        name: 'fleet-wide',
        groups: [{ name: 'canary', mandatory: true, selector: { matchLabels: { ring: 'canary' } } }],
        restGroupSize: 2000,
        strategy: { type: 'Progressive', maxConcurrency: '5%', progressDeadline: '1h' },
        window: { cron: '0 3 1 1 *', duration: '1h', timeZone: 'UTC' },
        target: { kind: 'Release', release: { ...asReleaseRequest(addonsRelease(undefined, 1, { dns: '1.4.0', proxy: '1.4.0', metrics: '1.4.0' })), version: '1.4.0' } },
      }),
    });
    if (!res.ok) throw new Error(`creating the rollout failed: ${res.status} ${await res.text()}`);
    console.log(`   a rollout over every accepted cluster created in ${Math.round(performance.now() - t)} ms`);

    const base = hub.dashboardUrl ?? '';
    const page = browser.page;
    await signIn(page, base, adminToken);
    // Functions, not strings: the page's CSP forbids eval, which Playwright uses for string predicates.
    const selectorCount = ([selector, n]: [string, number]) => (globalThis as unknown as { document: { querySelectorAll(s: string): { length: number } } }).document.querySelectorAll(selector).length >= n;
    const shots = process.env.FLEETLET_SCREENSHOTS;
    const views: { name: string; path: string; api: string; ready: [string, number]; shot?: string }[] = [
      { name: 'overview', path: '/', api: '/api/overview', ready: ['[data-testid="by-release"] tr', 1] },
      { name: 'overview, its rollouts', path: '/', api: '/api/rollouts?active=1&limit=50', ready: ['[data-testid="rollouts"] tr[data-rollout]', 1], shot: 'overview' },
      { name: 'overview, one label', path: '/?label=region%3Dregion-3', api: '/api/overview?label=region%3Dregion-3', ready: ['[data-testid="by-release"] tr', 1] },
      { name: 'clusters, page 100', path: '/clusters?offset=4950', api: '/api/clusters?offset=4950&limit=50', ready: ['tr[data-cluster]', 50], shot: 'clusters' },
      { name: 'rollout (all clusters)', path: '/rollouts/fleet-wide', api: '/api/rollouts/fleet-wide?limit=50', ready: ['[data-testid="members"] tr[data-cluster]', 50], shot: 'rollout' },
      { name: 'a cluster', path: `/clusters/${fleet[8]?.id ?? ''}`, api: `/api/clusters/${fleet[8]?.id ?? ''}`, ready: ['[data-attempt]', 1] },
      { name: 'hotfixes', path: '/hotfixes?override=cve-dns', api: '/api/overrides', ready: ['[data-testid="running-cve-dns"] tr[data-cluster]', 1], shot: 'hotfixes' },
    ];
    for (const v of views) {
      const rendered: number[] = [];
      const served: number[] = [];
      const steps: Record<string, number[]> = {};
      for (let i = 0; i < o.runs; i++) {
        await sleep(REUSE_EXPIRED_MS);
        await page.goto(`${base}${v.path}`);
        await page.waitForFunction(selectorCount, v.ready, { timeout: 30_000 });
        rendered.push(await page.evaluate(() => performance.now()));
        // Where the time went: the page's own clock for its script and each API answer it waited for.
        const marks = await page.evaluate(milestones, v.api.split('?')[0] ?? v.api);
        for (const [k, ms] of Object.entries(marks)) (steps[k] ??= []).push(ms);
        if (v.name === 'overview' && i === 0) {
          const total = await page.getByTestId('total').textContent();
          if (!total?.startsWith(`${o.clusters} clusters`)) throw new Error(`the overview counts "${total}", not ${o.clusters} clusters`);
        }
        // FLEETLET_SCREENSHOTS=docs/dashboard: the README's pictures of a large fleet.
        if (shots && i === 0 && v.shot) await page.screenshot({ path: join(shots, `${v.shot}-${o.clusters}.png`), fullPage: true });
        await sleep(REUSE_EXPIRED_MS);
        const s = performance.now();
        const r = await fetch(`${base}${v.api}`, { headers: { authorization: `Bearer ${adminToken}` } });
        await r.arrayBuffer();
        served.push(performance.now() - s);
      }
      const bytes = (await (await fetch(`${base}${v.api}`, { headers: { authorization: `Bearer ${adminToken}` } })).arrayBuffer()).byteLength;
      const a = [...rendered].sort((x, y) => x - y);
      const b = [...served].sort((x, y) => x - y);
      const f = (xs: number[], p: number) => Math.round(percentile(xs, p));
      console.log(`   ${v.name.padEnd(24)} on screen p50 ${f(a, 50)} ms, p95 ${f(a, 95)} ms · JSON answered p50 ${f(b, 50)} ms, p95 ${f(b, 95)} ms (${Math.round(bytes / 1024)} KiB)`);
      console.log(`   ${''.padEnd(24)} p50 from navigation: ${Object.entries(steps).map(([k, xs]) => `${k} ${f([...xs].sort((x, y) => x - y), 50)}`).join(', ')} ms`);
    }
    console.log(`   load average at the end: ${load()}`);
  } finally {
    await browser.close();
    await hub.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
