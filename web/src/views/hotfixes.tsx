// Hotfixes: every override the hub defined or a cluster reports running,
// and which clusters run it.
import type { OverrideClustersPage, OverrideView } from '../../../src/hub/dashboard/api-types.ts';
import { useApi } from '../api.ts';
import { release } from '../format.ts';
import { withQuery } from '../router.ts';
import { Status } from '../status.tsx';
import { Failure, Pager } from './common.tsx';

function Running({ name, url }: { name: string; url: URL }) {
  const offset = url.searchParams.get('offset') ?? '0';
  const { data } = useApi<OverrideClustersPage>(`/api/overrides/${encodeURIComponent(name)}/clusters?offset=${offset}&limit=50`);
  if (!data) return null;
  return (
    <>
      <table data-testid={`running-${name}`}>
        <caption>Clusters running {name}</caption>
        <thead>
          <tr>
            <th scope="col">Cluster</th>
            <th scope="col">Hotfix version</th>
            <th scope="col">Release</th>
          </tr>
        </thead>
        <tbody>
          {data.items.map((c) => (
            <tr key={c.clusterId} data-cluster={c.clusterId}>
              <th scope="row">
                <a href={`/clusters/${encodeURIComponent(c.clusterId)}`}>{c.clusterId}</a>
              </th>
              <td>{c.version ?? '—'}</td>
              <td>{release(null, c.runningVersion)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <Pager page={data} url={url} />
    </>
  );
}

export function Hotfixes({ url }: { url: URL }) {
  const { data, error } = useApi<{ overrides: OverrideView[] }>('/api/overrides');
  const open = url.searchParams.get('override');
  return (
    <>
      <h1>Hotfixes</h1>
      <p class="lead">Every override, and the clusters that report running it.</p>
      <Failure error={error} />
      {data && data.overrides.length === 0 ? <p>No hotfix override yet.</p> : null}
      {data?.overrides.map((o) => (
        <section class="card" key={o.name} data-override={o.name} aria-labelledby={`o-${o.name}`}>
          <h2 id={`o-${o.name}`}>
            {o.name} {o.version ? <span class="small">version {o.version}</span> : null} {o.withdrawn ? <Status state="Cancelled" detail="withdrawn" /> : null}
          </h2>
          {o.description ? <p>{o.description}</p> : null}
          <dl class="facts">
            <dt>Fixes</dt>
            <dd>{o.appliesTo ? `${o.appliesTo.releaseName} ${o.appliesTo.versions.join(', ')}` : 'not defined on this hub (seen in inventories only)'}</dd>
            <dt>Component</dt>
            <dd>
              {o.component ?? '—'}{' '}
              {Object.entries(o.images).map(([k, v]) => (
                <code key={k} class="label">
                  {k} → {v}
                </code>
              ))}
            </dd>
            <dt>Running on</dt>
            <dd data-testid={`count-${o.name}`}>
              {o.runningTotal} cluster{o.runningTotal === 1 ? '' : 's'}
              {o.running.length > 1 ? ` (${o.running.map((r) => `${r.clusters} on ${r.version ?? 'unversioned'}`).join(', ')})` : ''}
            </dd>
            <dt>Rollouts</dt>
            <dd>
              {o.rollouts.length === 0
                ? 'none'
                : o.rollouts.map((r) => (
                    <span key={r.name}>
                      <a href={`/rollouts/${encodeURIComponent(r.name)}`}>{r.name}</a> <Status state={r.phase} />{' '}
                    </span>
                  ))}
            </dd>
          </dl>
          {open === o.name ? (
            <Running name={o.name} url={url} />
          ) : o.runningTotal > 0 ? (
            <a href={withQuery(url, { override: o.name, offset: undefined })}>Show the clusters running {o.name}</a>
          ) : null}
        </section>
      ))}
    </>
  );
}
