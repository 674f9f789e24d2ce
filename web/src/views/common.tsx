// Pieces several pages share: cluster tables, paging, the label filter,
// confirmation of actions.
import { useRef, useState } from 'preact/hooks';
import type { ClusterRow, Page } from '../../../src/hub/dashboard/api-types.ts';
import { api, type HttpError } from '../api.ts';
import { ago, release, time, until } from '../format.ts';
import { navigate, withQuery } from '../router.ts';
import { Status } from '../status.tsx';

export function ClusterTable({ rows, now, caption, columns = ['state', 'release', 'reason', 'seen'] }: { rows: ClusterRow[]; now: number; caption?: string; columns?: ('state' | 'release' | 'reason' | 'window' | 'seen' | 'labels')[] }) {
  const has = (c: string) => (columns as string[]).includes(c);
  return (
    <table>
      {caption ? <caption>{caption}</caption> : null}
      <thead>
        <tr>
          <th scope="col">Cluster</th>
          {has('state') ? <th scope="col">State</th> : null}
          {has('release') ? <th scope="col">Running</th> : null}
          {has('reason') ? <th scope="col">Latest attempt</th> : null}
          {has('window') ? <th scope="col">Next window</th> : null}
          {has('labels') ? <th scope="col">Labels</th> : null}
          {has('seen') ? <th scope="col">Last seen</th> : null}
        </tr>
      </thead>
      <tbody>
        {rows.map((c) => (
          <tr key={c.id} data-cluster={c.id}>
            <th scope="row">
              <a href={`/clusters/${encodeURIComponent(c.id)}`}>{c.id}</a>
            </th>
            {has('state') ? (
              <td>
                <Status state={c.state} />
              </td>
            ) : null}
            {has('release') ? <td>{release(c.runningName, c.runningVersion)}</td> : null}
            {has('reason') ? (
              <td class="why">
                {c.phase ? (
                  <>
                    <strong>{c.releaseVersion}</strong> {c.phase}
                    {c.reason && c.reason !== c.phase ? <> · {c.reason}</> : null}
                    {c.message ? <div class="message">{c.message}</div> : null}
                  </>
                ) : (
                  '—'
                )}
              </td>
            ) : null}
            {has('window') ? <td data-testid="next-window">{windowText(c.maintenanceWindow, now)}</td> : null}
            {has('labels') ? <td>{Object.entries(c.labels).map(([k, v]) => <code key={k} class="label">{k}={v}</code>)}</td> : null}
            {has('seen') ? <td>{ago(c.lastSeen, now)}</td> : null}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** The agent's reported maintenance window in words; null: an agent that does not report it. */
export function windowText(w: ClusterRow['maintenanceWindow'], now: number): string {
  if (!w) return 'not reported';
  if (w.open) return w.closesAt ? `open now, closes ${until(w.closesAt, now)} (${time(w.closesAt)})` : 'open now';
  return w.opensAt ? `opens ${until(w.opensAt, now)} (${time(w.opensAt)})` : 'none within 400 days';
}

export function Pager({ page, url, param = 'offset' }: { page: Page<unknown>; url: URL; param?: string }) {
  if (page.total <= page.limit && page.offset === 0) return <p class="count">{page.total} in all</p>;
  const from = page.total === 0 ? 0 : page.offset + 1;
  const to = Math.min(page.offset + page.limit, page.total);
  const prev = Math.max(0, page.offset - page.limit);
  const next = page.offset + page.limit;
  return (
    <nav class="pager" aria-label="Pages">
      <span>
        {from}–{to} of {page.total}
      </span>
      {page.offset > 0 ? <a href={withQuery(url, { [param]: String(prev) })}>← Previous</a> : <span aria-disabled="true">← Previous</span>}
      {next < page.total ? <a href={withQuery(url, { [param]: String(next) })}>Next →</a> : <span aria-disabled="true">Next →</span>}
    </nav>
  );
}

export function LabelFilter({ url, suggestions }: { url: URL; suggestions: { key: string; value: string; clusters: number }[] }) {
  const active = url.searchParams.getAll('label');
  const input = useRef<HTMLInputElement>(null);
  const [error, setError] = useState<string | null>(null);
  return (
    <form
      class="label-filter"
      role="search"
      onSubmit={(e) => {
        e.preventDefault();
        const v = input.current?.value.trim() ?? '';
        if (!/^[^=]+=.*$/.test(v)) return setError('write a label as key=value, e.g. env=prod');
        setError(null);
        if (input.current) input.current.value = '';
        navigate(withQuery(url, { label: [...active.filter((a) => a !== v), v], offset: undefined }));
      }}
    >
      <label for="label-filter">Filter by label</label>
      <input id="label-filter" list="label-suggestions" placeholder="key=value" ref={input} aria-describedby={error ? 'label-error' : undefined} />
      <datalist id="label-suggestions">
        {suggestions.map((s) => (
          <option key={`${s.key}=${s.value}`} value={`${s.key}=${s.value}`}>{`${s.clusters} clusters`}</option>
        ))}
      </datalist>
      <button type="submit">Add filter</button>
      {error ? <span id="label-error" class="error">{error}</span> : null}
      {active.length > 0 ? (
        <ul class="chips" aria-label="Active label filters">
          {active.map((l) => (
            <li key={l}>
              <code>{l}</code>{' '}
              <a href={withQuery(url, { label: active.filter((a) => a !== l), offset: undefined })} aria-label={`Remove filter ${l}`}>
                ✕ remove
              </a>
            </li>
          ))}
        </ul>
      ) : null}
    </form>
  );
}

export interface Action {
  /** Button text. */
  label: string;
  /** The question the confirmation asks. */
  question: string;
  /** What will happen, in a sentence. */
  consequence: string;
  path: string;
  danger?: boolean;
}

/** A button that asks first (a modal dialog, Escape cancels), then posts. */
export function ActionButton({ action, onDone }: { action: Action; onDone?: () => void }) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const confirm = async () => {
    setBusy(true);
    try {
      await api.post(action.path);
      setError(null);
      dialog.current?.close();
      onDone?.();
    } catch (err) {
      const e = err as HttpError;
      setError(`${e.reason}: ${e.message}`);
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <button type="button" class={action.danger ? 'danger' : ''} onClick={() => (setError(null), dialog.current?.showModal())}>
        {action.label}
      </button>
      <dialog ref={dialog} aria-labelledby={`q-${action.path}`}>
        <h2 id={`q-${action.path}`}>{action.question}</h2>
        <p>{action.consequence}</p>
        {error ? (
          <p class="refusal" role="alert">
            {error}
          </p>
        ) : null}
        <div class="dialog-buttons">
          {/* The dialog opens on the safe choice for what cannot be undone, on the action otherwise. */}
          <button type="button" class={action.danger ? 'danger' : 'primary'} disabled={busy} autofocus={!action.danger} onClick={() => void confirm()}>
            Yes, {action.label.toLowerCase()}
          </button>
          <button type="button" autofocus={action.danger === true} onClick={() => dialog.current?.close()}>
            No, keep it as it is
          </button>
        </div>
      </dialog>
    </>
  );
}

export function Failure({ error }: { error: HttpError | undefined }) {
  if (!error || error.status === 0 || error.status === 401) return null;
  return (
    <p class="refusal" role="alert">
      {error.reason}: {error.message}
    </p>
  );
}
