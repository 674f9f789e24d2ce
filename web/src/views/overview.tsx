// The fleet at a glance: clusters by state and by running release (charts
// with their tables), active rollouts, newest failures, clusters waiting for
// their window, offline and pending ones. Everything narrows by label.
import type { ChartConfiguration } from 'chart.js';
import type { ClusterState, Overview, Page, RolloutSummary } from '../../../src/hub/dashboard/api-types.ts';
import { useApi } from '../api.ts';
import { ChartCanvas } from '../chart.tsx';
import { ago, release } from '../format.ts';
import { withQuery } from '../router.ts';
import { colourOf, stateInfo, Status } from '../status.tsx';
import { ClusterTable, Failure, LabelFilter } from './common.tsx';
import { RolloutTable } from './rollouts.tsx';

const STATE_ORDER: ClusterState[] = ['Succeeded', 'InProgress', 'Failed', 'RolledBack', 'PendingRegistration', 'Unknown', 'NoRelease'];

function labelQuery(url: URL): string {
  const q = new URLSearchParams();
  for (const l of url.searchParams.getAll('label')) q.append('label', l);
  return q.toString();
}

export function OverviewPage({ url }: { url: URL }) {
  const q = labelQuery(url);
  const { data, error } = useApi<Overview>(`/api/overview${q ? `?${q}` : ''}`);
  // Asked for apart, once the counts are here: the counts are SQL over indexes, a rollout's summary is its evaluation
  // (every member read), and the hub answers one request at a time, so the counts must not queue behind it.
  const active = useApi<Page<RolloutSummary>>(data ? '/api/rollouts?active=1&limit=50' : null);
  if (!data) return <><h1>Fleet overview</h1><Failure error={error} />{error ? null : <p class="loading">Loading…</p>}</>;
  const now = Date.parse(data.now);
  const clustersLink = (extra: Record<string, string>) => withQuery(new URL(`/clusters${q ? `?${q}` : ''}`, location.href), extra);
  const stateConfig: ChartConfiguration = {
    type: 'doughnut',
    data: {
      labels: STATE_ORDER.map((s) => stateInfo(s).label),
      datasets: [{ data: STATE_ORDER.map((s) => data.byState[s]), backgroundColor: STATE_ORDER.map(colourOf), borderColor: '#fff', borderWidth: 2 }],
    },
    options: { maintainAspectRatio: false, plugins: { legend: { display: false } } },
  };
  const releases = data.byRelease;
  const releaseConfig: ChartConfiguration = {
    type: 'bar',
    data: {
      labels: releases.map((r) => release(r.name, r.version)),
      datasets: [{ label: 'clusters', data: releases.map((r) => r.clusters), backgroundColor: '#1d5fbf', maxBarThickness: 28 }],
    },
    options: { maintainAspectRatio: false, indexAxis: 'y', plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } },
  };
  return (
    <>
      <h1>Fleet overview</h1>
      <LabelFilter url={url} suggestions={data.labels} />
      <p class="lead" data-testid="total">
        {data.total} clusters{data.filter.length > 0 ? ` matching ${data.filter.map(([k, v]) => `${k}=${v}`).join(', ')}` : ''}
      </p>
      <div class="grid">
        <section class="card" aria-labelledby="by-state">
          <h2 id="by-state">Clusters by state</h2>
          <ChartCanvas config={stateConfig} label={`Clusters by state: ${STATE_ORDER.map((s) => `${stateInfo(s).label} ${data.byState[s]}`).join(', ')}`} />
          <table class="legend" data-testid="by-state">
            <tbody>
              {STATE_ORDER.map((s) => (
                <tr key={s} data-state={s}>
                  <td>
                    <span class="swatch" style={{ background: colourOf(s) }} aria-hidden="true" />
                    <a href={clustersLink({ state: s })}>
                      <Status state={s} />
                    </a>
                  </td>
                  <td class="num" data-testid={`count-${s}`}>{data.byState[s]}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
        <section class="card" aria-labelledby="by-release">
          <h2 id="by-release">Running release</h2>
          <ChartCanvas config={releaseConfig} label={`Clusters by running release: ${releases.map((r) => `${release(r.name, r.version)} ${r.clusters}`).join(', ')}`} />
          <table class="legend" data-testid="by-release">
            <tbody>
              {releases.map((r) => (
                <tr key={`${r.name}/${r.version}`}>
                  <td>{release(r.name, r.version)}</td>
                  <td class="num">{r.clusters}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      </div>
      <section class="card" aria-labelledby="active-rollouts">
        <h2 id="active-rollouts">Active rollouts</h2>
        {active.data === undefined ? (
          <>
            <Failure error={active.error} />
            {active.error ? null : <p class="loading">Loading…</p>}
          </>
        ) : active.data.total === 0 ? (
          <p>
            No rollout is running. <a href="/rollouts">All rollouts</a>
          </p>
        ) : (
          <RolloutTable rollouts={active.data.items} now={now} />
        )}
      </section>
      <section class="card" aria-labelledby="failures">
        <h2 id="failures">Newest failures</h2>
        {data.failures.total === 0 ? <p>No cluster's latest attempt failed.</p> : <ClusterTable rows={data.failures.items} now={now} columns={['state', 'reason', 'release', 'seen']} />}
        {data.failures.total > data.failures.items.length ? <a href={clustersLink({ state: 'Failed,RolledBack' })}>All {data.failures.total} failed clusters</a> : null}
      </section>
      <section class="card" aria-labelledby="waiting">
        <h2 id="waiting">Waiting for their maintenance window</h2>
        {data.waitingForWindow.total === 0 ? <p>No cluster is waiting for a window.</p> : <ClusterTable rows={data.waitingForWindow.items} now={now} columns={['reason', 'window']} />}
        {data.waitingForWindow.total > 0 ? (
          <p class="count" data-testid="waiting-count">
            {data.waitingForWindow.total} {data.waitingForWindow.total === 1 ? 'cluster waits for its' : 'clusters wait for their'} maintenance window
            {data.waitingForWindow.total > data.waitingForWindow.items.length ? ` (${data.waitingForWindow.items.length} shown)` : ''}.
          </p>
        ) : null}
      </section>
      <div class="grid">
        <section class="card" aria-labelledby="offline">
          <h2 id="offline">Offline (Unknown)</h2>
          {data.offline.total === 0 ? (
            <p>Every accepted cluster is heartbeating.</p>
          ) : (
            <ul class="plain" data-testid="offline">
              {data.offline.items.map((c) => (
                <li key={c.id}>
                  <a href={`/clusters/${encodeURIComponent(c.id)}`}>{c.id}</a>: {c.lastSeen === null ? 'never connected' : <>offline since {ago(new Date(Date.parse(c.lastSeen) + data.leaseMs).toISOString(), now)} (last seen {ago(c.lastSeen, now)})</>}
                </li>
              ))}
            </ul>
          )}
          {data.offline.total > data.offline.items.length ? <a href={clustersLink({ state: 'Unknown' })}>All {data.offline.total} offline clusters</a> : null}
        </section>
        <section class="card" aria-labelledby="pending">
          <h2 id="pending">Pending registration</h2>
          {data.pending.total === 0 ? (
            <p>No cluster is waiting to be accepted.</p>
          ) : (
            <ul class="plain">
              {data.pending.items.map((c) => (
                <li key={c.id}>
                  <a href={`/clusters/${encodeURIComponent(c.id)}`}>{c.id}</a>
                </li>
              ))}
            </ul>
          )}
          {data.pending.total > data.pending.items.length ? <a href={clustersLink({ state: 'PendingRegistration' })}>All {data.pending.total} pending clusters</a> : null}
        </section>
      </div>
    </>
  );
}
