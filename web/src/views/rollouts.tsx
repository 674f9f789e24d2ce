// Rollouts: the list, and one rollout as a picture: its groups in order
// (canary gates first), each cluster's status, failures against
// maxFailures, soak timers, the hub window, and the operator's buttons.
import type { ChartConfiguration } from 'chart.js';
import type { Page, RolloutDetail, RolloutSummary, RolloutView } from '../../../src/hub/dashboard/api-types.ts';
import { useApi, useAppState } from '../api.ts';
import { ChartCanvas } from '../chart.tsx';
import { duration, time, until } from '../format.ts';
import { navigate, withQuery } from '../router.ts';
import { phaseColourOf, stateInfo, Status } from '../status.tsx';
import { ActionButton, Failure, Pager, type Action } from './common.tsx';

const MEMBER_STATUSES = ['Succeeded', 'Progressing', 'ToApply', 'Failed', 'TimedOut', 'Skipped'] as const;

function target(t: RolloutView['target']): string {
  if (t.kind === 'Release') return `release ${t.release.name} ${t.release.version}`;
  if (t.kind === 'Override') return `${t.override.withdrawn ? 'withdraw hotfix' : 'hotfix'} ${t.override.name} ${t.override.version} (${t.override.component})`;
  return `rollback of ${t.rollbackOf}`;
}

export function RolloutTable({ rollouts, now }: { rollouts: RolloutSummary[]; now: number }) {
  return (
    <table data-testid="rollouts">
      <thead>
        <tr>
          <th scope="col">Rollout</th>
          <th scope="col">Phase</th>
          <th scope="col">Target</th>
          <th scope="col">Clusters</th>
          <th scope="col">Failures</th>
          <th scope="col">Window</th>
        </tr>
      </thead>
      <tbody>
        {rollouts.map((r) => (
          <tr key={r.name} data-rollout={r.name}>
            <th scope="row">
              <a href={`/rollouts/${encodeURIComponent(r.name)}`}>{r.name}</a>
            </th>
            <td>
              <Status state={r.phase} detail={r.reason} />
            </td>
            <td>{target(r.target)}</td>
            <td>
              {r.counts.Succeeded} of {r.counts.total} succeeded
              {r.counts.Progressing > 0 ? `, ${r.counts.Progressing} in progress` : ''}
            </td>
            <td>
              {r.limits.failures} (max {r.limits.maxFailures})
            </td>
            <td>{r.window ? (r.window.open ? 'open' : `closed; opens ${until(r.window.nextOpeningAt, now)}`) : '—'}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function RolloutList({ url }: { url: URL }) {
  const offset = url.searchParams.get('offset') ?? '0';
  const { data, error } = useApi<Page<RolloutSummary> & { now?: string }>(`/api/rollouts?offset=${offset}&limit=25`);
  return (
    <>
      <h1>Rollouts</h1>
      <Failure error={error} />
      {data ? (
        data.total === 0 ? (
          <p>No rollout yet. Create one with <code>fleetlet rollout create -f rollout.yaml</code>.</p>
        ) : (
          <>
            <RolloutTable rollouts={data.items} now={Date.now()} />
            <Pager page={data} url={url} />
          </>
        )
      ) : null}
    </>
  );
}

function actionsFor(r: RolloutView): Action[] {
  const path = (verb: string) => `/api/rollouts/${encodeURIComponent(r.name)}/${verb}`;
  const active = r.phase === 'Progressing' || r.phase === 'Paused';
  const out: Action[] = [];
  if (r.phase === 'Progressing') out.push({ label: 'Pause', question: `Pause rollout ${r.name}?`, consequence: 'No new cluster starts until it is resumed; clusters already upgrading finish.', path: path('pause') });
  if (r.phase === 'Paused')
    out.push({
      label: 'Resume',
      question: `Resume rollout ${r.name}?`,
      consequence: `The ${r.limits.failures} failure(s) seen so far are accepted; only new failures count against maxFailures (${r.limits.maxFailures}) and the canary gates.`,
      path: path('resume'),
    });
  if (active) out.push({ label: 'Cancel', question: `Cancel rollout ${r.name}?`, consequence: 'No new cluster starts, ever; clusters keep what they were already sent.', path: path('cancel'), danger: true });
  if (r.rolledBackBy === null && r.target.kind !== 'Rollback' && r.counts.total - r.counts.ToApply > 0)
    out.push({ label: 'Roll back', question: `Roll back rollout ${r.name}?`, consequence: 'It stops, and a new rollout sends every cluster it reached the release it had before, group by group.', path: path('rollback'), danger: true });
  return out;
}

export function RolloutPage({ name, url }: { name: string; url: URL }) {
  const { session } = useAppState();
  const group = url.searchParams.get('group') ?? '';
  const status = url.searchParams.get('status') ?? '';
  const offset = url.searchParams.get('offset') ?? '0';
  const { data, error, reload } = useApi<RolloutDetail>(`/api/rollouts/${encodeURIComponent(name)}?group=${encodeURIComponent(group)}&status=${status}&offset=${offset}&limit=50`);
  if (!data) return <><h1>Rollout {name}</h1><Failure error={error} /></>;
  const r = data.rollout;
  const now = Date.parse(data.now);
  const canAct = session.state === 'signed-in' && session.role !== 'viewer';
  const minSuccessMs = parseDurationMs(r.strategy.minSuccessTime);
  const groupsChart: ChartConfiguration = {
    type: 'bar',
    data: {
      labels: r.groups.map((g, i) => `${i + 1}. ${g.name}${g.mandatory ? ' (gate)' : ''}`),
      datasets: MEMBER_STATUSES.map((s) => ({ label: stateInfo(s).label, data: r.groups.map((g) => g.counts[s]), backgroundColor: phaseColourOf(s), stack: 'all' })),
    },
    options: { maintainAspectRatio: false, indexAxis: 'y', scales: { x: { stacked: true, beginAtZero: true, ticks: { precision: 0 } }, y: { stacked: true } }, plugins: { legend: { position: 'bottom' } } },
  };
  const failureShare = r.limits.maxFailures === 0 ? (r.limits.failures > 0 ? 1 : 0) : Math.min(1, r.limits.failures / (r.limits.maxFailures + 1));
  return (
    <>
      <p class="crumbs">
        <a href="/rollouts">Rollouts</a> ›
      </p>
      <h1>
        Rollout {r.name} <Status state={r.phase} />
      </h1>
      <p class="lead">
        {target(r.target)} · {r.strategy.type}
        {r.limits.maxConcurrency !== null ? `, ${r.limits.maxConcurrency} at a time` : ''}
        {r.description ? ` · ${r.description}` : ''}
      </p>
      {r.reason ? (
        <p class={`phase-reason tone-${stateInfo(r.phase).tone}`} data-testid="phase-reason">
          <strong>{r.reason}</strong>
          {r.message ? `: ${r.message}` : ''}
        </p>
      ) : null}
      {canAct ? (
        <div class="actions" data-testid="actions">
          {actionsFor(r).map((a) => (
            <ActionButton key={a.label} action={a} onDone={a.label === 'Roll back' ? () => navigate('/rollouts') : reload} />
          ))}
        </div>
      ) : (
        <p class="note" data-testid="view-only">
          You are signed in as a viewer: you can follow this rollout but not change it.
        </p>
      )}
      <div class="grid">
        <section class="card" aria-labelledby="limits">
          <h2 id="limits">Limits and timing</h2>
          <dl class="facts">
            <dt>Failures</dt>
            <dd data-testid="failures">
              {r.limits.failures} of at most {r.limits.maxFailures} tolerated
              {r.limits.acknowledgedFailures > 0 ? ` (${r.limits.acknowledgedFailures} accepted on resume)` : ''}
              <meter min={0} max={1} low={0.5} high={0.99} optimum={0} value={failureShare} aria-label="failures against the limit" />
            </dd>
            <dt>Clusters</dt>
            <dd>
              {MEMBER_STATUSES.filter((s) => r.counts[s] > 0).map((s) => `${r.counts[s]} ${stateInfo(s).label.toLowerCase()}`).join(', ') || 'none'} of {r.counts.total}
              {r.counts.unknown > 0 ? ` (${r.counts.unknown} offline)` : ''}
            </dd>
            <dt>Soak</dt>
            <dd>{minSuccessMs > 0 ? `each cluster must stay Succeeded ${duration(minSuccessMs)} before it counts` : 'none'}</dd>
            <dt>Deadline</dt>
            <dd>{r.strategy.progressDeadline === 'None' ? 'none' : `${r.strategy.progressDeadline} per cluster`}</dd>
            <dt>Hub window</dt>
            <dd data-testid="window">
              {r.window ? (
                <>
                  <Status state={r.window.open ? 'Active' : 'WaitingForWindow'} detail={r.window.open ? 'open now' : `closed; opens ${until(r.window.nextOpeningAt, now)}`} /> <code>{r.window.cron}</code> {r.window.until !== undefined ? `until ${r.window.until}` : `for ${r.window.duration}`} ({r.window.timeZone})
                </>
              ) : (
                'none: clusters start whenever their turn comes (their own windows still apply)'
              )}
            </dd>
            <dt>Started</dt>
            <dd>{time(r.startedAt)}</dd>
            <dt>{r.endedAt ? 'Ended' : 'Expected end'}</dt>
            <dd>{time(r.endedAt ?? r.expectedEndAt)}</dd>
            {r.rolledBackBy ? (
              <>
                <dt>Rolled back by</dt>
                <dd>
                  <a href={`/rollouts/${encodeURIComponent(r.rolledBackBy)}`}>{r.rolledBackBy}</a>
                </dd>
              </>
            ) : null}
          </dl>
        </section>
        <section class="card" aria-labelledby="groups">
          <h2 id="groups">Groups, in order</h2>
          <ChartCanvas config={groupsChart} label={`Clusters per group and status: ${r.groups.map((g) => `${g.name}: ${g.counts.Succeeded} succeeded, ${g.counts.Failed + g.counts.TimedOut} failed of ${g.counts.total}`).join('; ')}`} height={Math.max(140, 60 + 34 * r.groups.length)} />
          <ol class="groups" data-testid="groups">
            {r.groups.map((g) => (
              <li key={g.name} data-group={g.name}>
                <a href={withQuery(url, { group: g.name, status: undefined, offset: undefined })}>{g.name}</a> <Status state={g.state === 'Done' && g.counts.Failed + g.counts.TimedOut > 0 ? 'DoneWithFailures' : g.state} />
                {g.mandatory ? <span class="gate"> canary gate: must fully succeed before the next group starts</span> : null}
                <div class="small">
                  {g.counts.Succeeded}/{g.counts.total} succeeded{g.counts.Failed + g.counts.TimedOut > 0 ? `, ${g.counts.Failed + g.counts.TimedOut} failed` : ''}
                  {g.startedAt ? ` · started ${time(g.startedAt)}` : ''}
                </div>
              </li>
            ))}
          </ol>
        </section>
      </div>
      {r.failed.length > 0 ? (
        <section class="card" aria-labelledby="failed">
          <h2 id="failed">Failed clusters</h2>
          <ul class="plain" data-testid="failed">
            {r.failed.map((c) => (
              <li key={c.clusterId} data-cluster={c.clusterId}>
                <a href={`/clusters/${encodeURIComponent(c.clusterId)}`}>{c.clusterId}</a> <Status state={c.status} detail={c.reason} /> {c.message}
              </li>
            ))}
          </ul>
        </section>
      ) : null}
      <section class="card" aria-labelledby="members">
        <h2 id="members">Clusters{group ? ` in ${group}` : ''}</h2>
        <form class="filters" onSubmit={(e) => e.preventDefault()}>
          <label for="status-filter">Status</label>
          <select id="status-filter" value={status} onChange={(e) => navigate(withQuery(url, { status: (e.target as HTMLSelectElement).value, offset: undefined }))}>
            <option value="">any</option>
            {MEMBER_STATUSES.map((s) => (
              <option key={s} value={s}>
                {stateInfo(s).label}
              </option>
            ))}
          </select>
          {group ? <a href={withQuery(url, { group: undefined, offset: undefined })}>Show every group</a> : null}
        </form>
        <table data-testid="members">
          <thead>
            <tr>
              <th scope="col">Cluster</th>
              <th scope="col">Group</th>
              <th scope="col">Status</th>
              <th scope="col">Why</th>
              <th scope="col">Sent</th>
            </tr>
          </thead>
          <tbody>
            {data.members.items.map((c) => (
              <tr key={c.clusterId} data-cluster={c.clusterId} data-status={c.status}>
                <th scope="row">
                  <a href={`/clusters/${encodeURIComponent(c.clusterId)}`}>{c.clusterId}</a>
                  {c.available ? null : <span class="small"> (offline)</span>}
                </th>
                <td>{c.group}</td>
                <td>
                  <Status state={c.status} />
                </td>
                <td class="why">
                  {c.reason === 'Soaking' && c.at ? (
                    <>soaking: counts {until(new Date(Date.parse(c.at) + minSuccessMs).toISOString(), now)}</>
                  ) : (
                    <>
                      {c.reason ?? ''}
                      {c.message ? <div class="message">{c.message}</div> : null}
                    </>
                  )}
                </td>
                <td>{time(c.sentAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
        <Pager page={data.members} url={url} />
      </section>
    </>
  );
}

function parseDurationMs(text: string): number {
  let ms = 0;
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) {
    const n = Number(m[1]);
    ms += n * ({ ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms'] ?? 0);
  }
  return ms;
}
