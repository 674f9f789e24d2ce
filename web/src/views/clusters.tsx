// Clusters: a paginated, filterable list, and one cluster's story: its
// attempts as a timeline (stages, durations, health results, rollback
// reasons), what it runs, its outbox while offline, its next window, its
// labels, and accept/deregister for operators.
import type { ChartConfiguration } from 'chart.js';
import type { AttemptView, ClusterDetail, ClusterRow, Page } from '../../../src/hub/dashboard/api-types.ts';
import { useApi, useAppState } from '../api.ts';
import { ChartCanvas } from '../chart.tsx';
import { ago, duration, plural, release, time, until } from '../format.ts';
import { navigate, withQuery } from '../router.ts';
import { phaseColourOf, stateInfo, Status } from '../status.tsx';
import { ActionButton, ClusterTable, Failure, LabelFilter, Pager, windowText } from './common.tsx';

const STATES = ['Succeeded', 'InProgress', 'Failed', 'RolledBack', 'PendingRegistration', 'Unknown', 'NoRelease'];

export function ClusterList({ url }: { url: URL }) {
  const q = new URLSearchParams();
  for (const l of url.searchParams.getAll('label')) q.append('label', l);
  for (const k of ['state', 'q', 'offset']) {
    const v = url.searchParams.get(k);
    if (v) q.set(k, v);
  }
  q.set('limit', '50');
  const { data, error } = useApi<Page<ClusterRow>>(`/api/clusters?${q.toString()}`);
  const state = url.searchParams.get('state') ?? '';
  return (
    <>
      <h1>Clusters</h1>
      <LabelFilter url={url} suggestions={[]} />
      <form class="filters" role="search" onSubmit={(e) => {
        e.preventDefault();
        const v = ((e.currentTarget as HTMLFormElement).elements.namedItem('q') as HTMLInputElement).value;
        navigate(withQuery(url, { q: v, offset: undefined }));
      }}>
        <label for="state-filter">State</label>
        <select id="state-filter" value={state} onChange={(e) => navigate(withQuery(url, { state: (e.target as HTMLSelectElement).value, offset: undefined }))}>
          <option value="">any</option>
          {STATES.map((s) => <option key={s} value={s}>{stateInfo(s).label}</option>)}
          {state && !STATES.includes(state) ? <option value={state}>{state.split(',').map((s) => stateInfo(s).label).join(' or ')}</option> : null}
        </select>
        <label for="search">Cluster id contains</label>
        <input id="search" name="q" defaultValue={url.searchParams.get('q') ?? ''} />
        <button type="submit">Search</button>
      </form>
      <Failure error={error} />
      {data ? (
        <>
          <ClusterTable rows={data.items} now={Date.now()} columns={['state', 'release', 'reason', 'labels', 'seen']} />
          <Pager page={data} url={url} />
        </>
      ) : null}
    </>
  );
}

const PHASE_ORDER = ['WaitingForWindow', 'PreflightChecking', 'Upgrading', 'Verifying', 'Soaking', 'RollingBack'];

function timelineConfig(attempts: AttemptView[], now: number): ChartConfiguration<'bar', { x: [number, number]; y: string }[]> {
  const shown = attempts.slice(0, 8).reverse();
  const label = (a: AttemptView) => `rev ${a.release.revision} · ${a.release.version}`;
  const t0 = Math.min(...shown.map((a) => Date.parse(a.startedAt)));
  const datasets = PHASE_ORDER.map((phase) => ({
    label: stateInfo(phase).label,
    backgroundColor: phaseColourOf(phase),
    grouped: false,
    data: shown.flatMap((a) =>
      a.transitions.flatMap((t, i) => {
        if (t.phase !== phase) return [];
        const end = Date.parse(a.transitions[i + 1]?.at ?? a.endedAt ?? new Date(now).toISOString());
        return [{ x: [(Date.parse(t.at) - t0) / 1000, Math.max((end - t0) / 1000, (Date.parse(t.at) - t0) / 1000 + 0.2)] as [number, number], y: label(a) }];
      }),
    ),
  }));
  return {
    type: 'bar',
    data: { labels: shown.map(label), datasets },
    options: {
      maintainAspectRatio: false,
      indexAxis: 'y',
      scales: { x: { title: { display: true, text: `seconds since ${time(new Date(t0).toISOString())}` }, beginAtZero: true } },
      plugins: { legend: { position: 'bottom' } },
    },
  };
}

function Attempt({ a, now }: { a: AttemptView; now: number }) {
  const ended = a.endedAt !== null;
  const rollback = a.transitions.find((t) => t.phase === 'RollingBack');
  return (
    <li class="attempt" data-attempt={a.attemptId}>
      <h3>
        {a.release.name} {a.release.version} <span class="small">revision {a.release.revision}</span> <Status state={a.phase} />{' '}
        <span class="small">
          {ended ? `took ${duration(a.durationMs)}` : `running for ${duration(a.durationMs)}`}, started {ago(a.startedAt, now)}
        </span>
      </h3>
      {rollback ? (
        <p class="phase-reason tone-bad" data-testid="rollback-reason">
          <strong>Rolled back because {rollback.reason}</strong>
          {rollback.message ? `: ${rollback.message}` : ''}
        </p>
      ) : null}
      <table>
        <thead>
          <tr>
            <th scope="col">When</th>
            <th scope="col">Took</th>
            <th scope="col">Stage</th>
            <th scope="col">Phase</th>
            <th scope="col">Result</th>
          </tr>
        </thead>
        <tbody>
          {a.transitions.map((t, i) => {
            const next = a.transitions[i + 1]?.at ?? (ended ? null : new Date(now).toISOString());
            return (
              <tr key={`${t.at}-${i}`}>
                <td>
                  {time(t.at)}
                  {t.heldMs !== null ? <div class="small">reported {duration(t.heldMs)} later: held in the agent's outbox while offline</div> : null}
                </td>
                <td>{next ? duration(Date.parse(next) - Date.parse(t.at)) : '—'}</td>
                <td>{t.stage ?? '—'}</td>
                <td>
                  <Status state={t.phase} />
                </td>
                <td class="why">
                  {t.reason ? <strong>{t.reason}</strong> : null}
                  {t.message ? <div class="message">{t.message}</div> : null}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </li>
  );
}

export function ClusterPage({ id }: { id: string }) {
  const { session } = useAppState();
  const { data, error, reload } = useApi<ClusterDetail>(`/api/clusters/${encodeURIComponent(id)}`);
  if (!data) return <><h1>Cluster {id}</h1><Failure error={error} /></>;
  const c = data.cluster;
  const now = Date.parse(data.now);
  const canAct = session.state === 'signed-in' && session.role !== 'viewer';
  const path = (verb: string) => `/api/clusters/${encodeURIComponent(id)}/${verb}`;
  return (
    <>
      <p class="crumbs">
        <a href="/clusters">Clusters</a> ›
      </p>
      <h1>
        Cluster {c.id} <Status state={data.state} />
      </h1>
      {canAct ? (
        <div class="actions" data-testid="actions">
          {c.registration === 'Pending' ? (
            <ActionButton action={{ label: 'Accept', question: `Accept cluster ${c.id}?`, consequence: 'It gets a credential of its own and becomes part of the fleet: rollouts may select it.', path: path('accept') }} onDone={reload} />
          ) : null}
          <ActionButton
            action={{ label: 'Deregister', question: `Deregister cluster ${c.id}?`, consequence: 'The hub forgets it (its releases, reports and history); a connected agent is told and disconnected.', path: path('deregister'), danger: true }}
            onDone={() => navigate('/clusters')}
          />
        </div>
      ) : null}
      <div class="grid">
        <section class="card" aria-labelledby="now">
          <h2 id="now">Now</h2>
          <dl class="facts">
            <dt>Registration</dt>
            <dd>
              <Status state={c.registration} />
            </dd>
            <dt>Connection</dt>
            <dd>
              {c.availability.status === 'True' ? <Status state="Active" detail="heartbeating" /> : <Status state="Unknown" />} {c.availability.message}
            </dd>
            <dt>Runs</dt>
            <dd data-testid="running">{c.runningRelease ? release(c.runningRelease.name, c.runningRelease.version) : 'no release yet'}</dd>
            <dt>Desired</dt>
            <dd>{c.desiredRelease ? `${release(c.desiredRelease.name, c.desiredRelease.version)} (revision ${c.desiredRelease.revision}, expires ${time(c.desiredRelease.expiresAt)})` : 'none'}</dd>
            <dt>Hotfixes</dt>
            <dd>{c.overrides.length === 0 ? 'none' : c.overrides.map((o) => <code key={o.name} class="label">{o.name}{o.version ? ` ${o.version}` : ''}{o.component ? ` → ${o.component}` : ''}</code>)}</dd>
            <dt>Components</dt>
            <dd>{c.components.length === 0 ? '—' : c.components.map((x) => <code key={x.name} class="label">{x.name} {x.version}</code>)}</dd>
            <dt>Labels</dt>
            <dd data-testid="labels">{Object.keys(c.labels).length === 0 ? 'none' : Object.entries(c.labels).map(([k, v]) => <code key={k} class="label">{k}={v}</code>)}</dd>
            <dt>Agent</dt>
            <dd>
              {c.agentVersion ?? '—'} on Kubernetes {c.kubernetesVersion || '—'} ({c.targetInfrastructure ?? '—'})
            </dd>
            {c.lastRefusal ? (
              <>
                <dt>Refused</dt>
                <dd>
                  <strong>{c.lastRefusal.reason}</strong>: {c.lastRefusal.message}
                </dd>
              </>
            ) : null}
          </dl>
        </section>
        <section class="card" aria-labelledby="windows">
          <h2 id="windows">Maintenance window and outbox</h2>
          <dl class="facts">
            <dt>Next maintenance window</dt>
            <dd data-testid="reported-window">{windowText(data.windows.reported, now)}</dd>
            <dt>Agent's window</dt>
            <dd data-testid="agent-window">
              {data.windows.agent ? (
                <>
                  {/* The time beside the badge, not in it: a badge does not wrap. */}
                  <Status state="WaitingForWindow" /> {data.windows.agent.nextOpensAt ? `next opens ${until(data.windows.agent.nextOpensAt, now)} (${time(data.windows.agent.nextOpensAt)})` : data.windows.agent.reason}
                  <div class="message">{data.windows.agent.message}</div>
                </>
              ) : (
                'not waiting for a window'
              )}
            </dd>
            <dt>Hub windows</dt>
            <dd>
              {data.windows.hub.length === 0
                ? 'no active rollout with a window holds this cluster'
                : data.windows.hub.map((w) => (
                    <div key={w.rollout}>
                      <a href={`/rollouts/${encodeURIComponent(w.rollout)}`}>{w.rollout}</a>: {w.open ? 'open now' : `opens ${until(w.nextOpeningAt, now)}`} (<code>{w.cron}</code> {w.until !== undefined ? `until ${w.until}` : `for ${w.duration}`}, {w.timeZone})
                    </div>
                  ))}
            </dd>
            <dt>Outbox</dt>
            <dd data-testid="outbox">
              {data.outbox.offlineNow ? 'The agent is offline: whatever it does now waits in its outbox and reaches the hub, in order, when the link returns. ' : ''}
              {data.outbox.heldReports > 0
                ? `${plural(data.outbox.heldReports, 'report')} arrived late (held in the outbox while offline, up to ${duration(data.outbox.longestHeldMs)}); the last on ${time(data.outbox.lastHeldAt)}.`
                : data.outbox.offlineNow
                  ? ''
                  : 'Every report arrived as it was written.'}{' '}
              The hub holds every report up to #{c.reports.ackedSeq}.
            </dd>
            <dt>Rollouts</dt>
            <dd>
              {data.rollouts.length === 0
                ? 'none'
                : data.rollouts.map((r) => (
                    <div key={r.name}>
                      <a href={`/rollouts/${encodeURIComponent(r.name)}`}>{r.name}</a> <Status state={r.phase} />
                    </div>
                  ))}
            </dd>
          </dl>
        </section>
      </div>
      <section class="card" aria-labelledby="attempts">
        <h2 id="attempts">Attempts</h2>
        {data.attempts.length === 0 ? (
          <p>No upgrade attempt reported yet.</p>
        ) : (
          <>
            <ChartCanvas config={timelineConfig(data.attempts, now) as unknown as ChartConfiguration} label={`Timeline of the newest attempts: ${data.attempts.slice(0, 8).map((a) => `${a.release.version} ${a.phase} in ${duration(a.durationMs)}`).join('; ')}`} height={Math.max(160, 70 + 36 * Math.min(8, data.attempts.length))} />
            <ol class="attempts plain">
              {data.attempts.map((a) => (
                <Attempt key={a.attemptId} a={a} now={now} />
              ))}
            </ol>
          </>
        )}
      </section>
    </>
  );
}
