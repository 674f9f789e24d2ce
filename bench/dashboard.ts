// The dashboard with 10,000 clusters: a hub database seeded with a fleet of
// every state (test/support/fleet-seed.ts) and one rollout over all of it
// (its window closed, so nothing moves), served by a real hub; a real
// headless chromium loads each view. Times are from navigation start to the
// view's numbers on screen (performance.now() in the page), and the
// server's own answer time for each view's JSON.
//
// The server keeps an answer until the store's fingerprint moves
// (src/hub/dashboard/server.ts), so every sample here follows a change (a
// cluster relabelled through the API): none is a reused answer, each is what
// the first page to ask after a change waits for. The JSON is also timed a
// second time, reused, as every other page asking before the next change
// gets it. Where the overview's time goes: each of its queries timed on
// their own, the JSON's transfer, and the page's own clock (script loaded
// and run, session and view answered, numbers on screen).
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import { DEFAULT_ASSETS_DIR } from '../src/hub/dashboard/server.ts';
import { startHub } from '../src/hub/start-hub.ts';
import { openSqlite } from '../src/hub/store/database.ts';
import { DashboardRepo } from '../src/hub/store/dashboard-repo.ts';
import { generateReleaseKey } from '../src/protocol/signing.ts';
import { addonsRelease, asReleaseRequest } from '../src/testbed/sample-releases.ts';
import { openBrowser, signIn } from '../test/support/browser.ts';
import { fleetOf, seedFleet } from '../test/support/fleet-seed.ts';
import { loadavg } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { percentile } from './stats.ts';

/** Longer than the rollout evaluation's reuse (ROLLOUT_REUSE_MS in server.ts), which also ends with a change. */
const REUSE_EXPIRED_MS = 2100;
/** The hubs' heartbeat here: long enough that no seeded cluster changes availability while measured. */
const HEARTBEAT_MS = 600_000;
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

const ms = (xs: number[], p: number) => Math.round(percentile([...xs].sort((x, y) => x - y), p));

/** Each query of the overview (views.ts overview()) on its own, on a connection of its own: the server's share of the overview's time. */
async function overviewQueries(dbPath: string, runs: number): Promise<void> {
  const db = openSqlite(dbPath);
  try {
    const repo = new DashboardRepo(db);
    const cutoff = new Date(Date.now() - 5 * HEARTBEAT_MS).toISOString();
    const byState = await repo.countByState(cutoff, []);
    const queries: [string, () => Promise<unknown>][] = [
      ['fingerprint', () => repo.fingerprint(cutoff)],
      ['count by state', () => repo.countByState(cutoff, [])],
      ['count by running release', () => repo.countByRunningRelease([])],
      ['waiting for a window (10 newest, counted)', () => repo.clusters({ cutoff, filter: [], phase: 'WaitingForWindow', order: 'recent', offset: 0, limit: 10 })],
      ['newest failures (10)', () => repo.clusters({ cutoff, filter: [], states: ['Failed', 'RolledBack'], order: 'recent', offset: 0, limit: 10, total: byState.Failed + byState.RolledBack })],
      ['offline (10)', () => repo.clusters({ cutoff, filter: [], states: ['Unknown'], order: 'lastSeen', offset: 0, limit: 10, total: byState.Unknown })],
      ['pending (10)', () => repo.clusters({ cutoff, filter: [], states: ['PendingRegistration'], order: 'id', offset: 0, limit: 10, total: byState.PendingRegistration })],
      ['label pairs (40)', () => repo.labelPairs(40)],
      ['count by state, one label', () => repo.countByState(cutoff, [['region', 'region-3']])],
    ];
    const lines: string[] = [];
    let total = 0;
    for (const [name, run] of queries) {
      const xs: number[] = [];
      for (let i = 0; i < runs; i++) {
        const t = performance.now();
        await run();
        xs.push(performance.now() - t);
      }
      const p50 = percentile([...xs].sort((x, y) => x - y), 50);
      if (name !== 'count by state, one label') total += p50;
      lines.push(`${name} ${p50.toFixed(1)}`);
    }
    console.log(`   the overview's queries, p50 of ${runs} each (ms): ${lines.join(', ')}; the unfiltered overview's sum ${total.toFixed(1)} ms`);
  } finally {
    await db.close();
  }
}

export async function dashboardBench(o: { clusters: number; runs: number }): Promise<void> {
  console.log(`== dashboard: ${o.clusters} clusters, each view loaded ${o.runs} times in headless chromium (load average ${load()})`);
  const dir = mkdtempSync(join(tmpdir(), 'fleetlet-dashboard-bench-'));
  const dbPath = join(dir, 'hub.db');
  const fleet = fleetOf(o.clusters);
  let t = performance.now();
  await seedFleet(dbPath, fleet, () => new Date());
  console.log(`   seeded ${o.clusters} clusters in ${Math.round(performance.now() - t)} ms`);
  await overviewQueries(dbPath, Math.max(o.runs, 20));
  const bundle = (f: string) => Math.round(statSync(join(DEFAULT_ASSETS_DIR, f)).size / 1024);
  console.log(`   the browser app: app.js ${bundle('app.js')} KiB, app-style.css ${bundle('app-style.css')} KiB (minified, not compressed)`);
  const adminToken = 'bench-admin-token-0123456789';
  const hub = await startHub({
    port: 0,
    dbPath,
    releaseKey: generateReleaseKey().privateKey,
    adminToken,
    bootstrapTokens: [],
    heartbeatMs: HEARTBEAT_MS,
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
    // A change the dashboard shows (its fingerprint moves): the next answer of every view is computed afresh.
    let relabels = 0;
    const change = async () => {
      const r = await fetch(`${hub.httpUrl}/api/v1/clusters/${fleet[1]?.id ?? ''}/labels`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ labels: { ...fleet[1]?.labels, bench: String(relabels++ % 2) } }),
      });
      if (!r.ok) throw new Error(`relabelling failed: ${r.status} ${await r.text()}`);
    };
    const timedFetch = async (path: string) => {
      const s = performance.now();
      const r = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${adminToken}` } });
      await r.arrayBuffer();
      return performance.now() - s;
    };
    for (const v of views) {
      const rendered: number[] = [];
      const served: number[] = [];
      const reused: number[] = [];
      const steps: Record<string, number[]> = {};
      for (let i = 0; i < o.runs; i++) {
        // No page open (so none refetches on the change), then the change, then the view.
        await page.goto('about:blank');
        await sleep(REUSE_EXPIRED_MS);
        await change();
        await page.goto(`${base}${v.path}`);
        await page.waitForFunction(selectorCount, v.ready, { timeout: 30_000 });
        rendered.push(await page.evaluate(() => performance.now()));
        // Where the time went: the page's own clock for its script and each API answer it waited for.
        const marks = await page.evaluate(milestones, v.api.split('?')[0] ?? v.api);
        marks['on screen'] = Math.round(rendered.at(-1) ?? 0);
        for (const [k, ms] of Object.entries(marks)) (steps[k] ??= []).push(ms);
        if (v.name === 'overview' && i === 0) {
          const total = await page.getByTestId('total').textContent();
          if (!total?.startsWith(`${o.clusters} clusters`)) throw new Error(`the overview counts "${total}", not ${o.clusters} clusters`);
        }
        // FLEETLET_SCREENSHOTS=docs/dashboard: the README's pictures of a large fleet.
        if (shots && i === 0 && v.shot) await page.screenshot({ path: join(shots, `${v.shot}-${o.clusters}.png`), fullPage: true });
        await page.goto('about:blank');
        await sleep(REUSE_EXPIRED_MS);
        await change();
        served.push(await timedFetch(v.api));
        reused.push(await timedFetch(v.api));
      }
      const bytes = (await (await fetch(`${base}${v.api}`, { headers: { authorization: `Bearer ${adminToken}` } })).arrayBuffer()).byteLength;
      console.log(`   ${v.name.padEnd(24)} on screen p50 ${ms(rendered, 50)} ms, p95 ${ms(rendered, 95)} ms · JSON after a change p50 ${ms(served, 50)} ms, p95 ${ms(served, 95)} ms, reused p50 ${ms(reused, 50)} ms (${Math.round(bytes / 1024)} KiB)`);
      console.log(`   ${''.padEnd(24)} p50 from navigation: ${Object.entries(steps).map(([k, xs]) => `${k} ${ms(xs, 50)}`).join(', ')} ms`);
    }
    console.log(`   load average at the end: ${load()}`);
  } finally {
    await browser.close();
    await hub.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
