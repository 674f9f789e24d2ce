// Talking to the dashboard server: JSON reads and actions, the sign-in
// state, and the live event stream that says when to refetch.
import { useEffect, useRef, useState } from 'preact/hooks';
import { LatestAnswer } from './latest-answer.ts';
import type { ApiErrorBody, Role } from '../../src/hub/dashboard/api-types.ts';

export type Session = { state: 'checking' } | { state: 'signed-out'; reason: string; message: string } | { state: 'signed-in'; role: Role };
export type Link = 'connecting' | 'up' | 'down';

interface AppState {
  session: Session;
  link: Link;
  /** Bumped whenever the server says something changed (or the stream reconnected): views refetch. */
  version: number;
}

let state: AppState = { session: { state: 'checking' }, link: 'connecting', version: 0 };
const listeners = new Set<() => void>();

function set(patch: Partial<AppState>): void {
  state = { ...state, ...patch };
  for (const l of listeners) l();
}

export function useAppState(): AppState {
  const [, force] = useState(0);
  useEffect(() => {
    const l = () => force((n) => n + 1);
    listeners.add(l);
    return () => void listeners.delete(l);
  }, []);
  return state;
}

export class HttpError extends Error {
  readonly status: number;
  readonly reason: string;
  constructor(status: number, reason: string, message: string) {
    super(message);
    this.status = status;
    this.reason = reason;
  }
}

async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      credentials: 'same-origin',
      headers: { accept: 'application/json', ...(method !== 'GET' ? { 'x-fleetlet-dashboard': '1' } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
  } catch {
    set({ link: 'down' });
    throw new HttpError(0, 'Unreachable', 'the hub cannot be reached');
  }
  const json = (await res.json().catch(() => ({}))) as T & Partial<ApiErrorBody>;
  if (!res.ok) {
    const reason = json.error?.reason ?? `HTTP${res.status}`;
    const message = json.error?.message ?? res.statusText;
    if (res.status === 401 && path !== '/api/session') set({ session: { state: 'signed-out', reason, message } });
    throw new HttpError(res.status, reason, message);
  }
  return json;
}

export const api = {
  get: <T>(path: string) => request<T>('GET', path),
  post: <T>(path: string, body?: unknown) => request<T>('POST', path, body ?? {}),
};

export async function checkSession(): Promise<void> {
  try {
    const s = await api.get<{ role: Role }>('/api/session');
    set({ session: { state: 'signed-in', role: s.role } });
    startLive();
  } catch (err) {
    const e = err as HttpError;
    if (e.status === 0) {
      // Unreachable: say so and try again shortly.
      setTimeout(() => void checkSession(), 2000);
      return;
    }
    set({ session: { state: 'signed-out', reason: e.reason, message: e.message } });
  }
}

export async function signIn(token: string): Promise<void> {
  try {
    const s = await api.post<{ role: Role }>('/api/session', { token });
    set({ session: { state: 'signed-in', role: s.role }, version: state.version + 1 });
    startLive();
  } catch (err) {
    const e = err as HttpError;
    set({ session: { state: 'signed-out', reason: e.reason, message: e.message } });
  }
}

export async function signOut(): Promise<void> {
  await request('DELETE', '/api/session').catch(() => undefined);
  stopLive();
  set({ session: { state: 'signed-out', reason: 'SignedOut', message: 'you signed out' } });
}

let source: EventSource | undefined;
let retry: ReturnType<typeof setTimeout> | undefined;

function stopLive(): void {
  source?.close();
  source = undefined;
  if (retry !== undefined) clearTimeout(retry);
}

/** One EventSource for the page. The browser reconnects it by itself; a refused stream (signed out) is checked and retried. */
function startLive(): void {
  stopLive();
  const es = new EventSource('/api/events');
  source = es;
  // A first hello changes nothing the page fetched; after an outage, everything shown may be stale.
  es.addEventListener('hello', () => set(state.link === 'down' ? { link: 'up', version: state.version + 1 } : { link: 'up' }));
  es.addEventListener('changed', () => set({ link: 'up', version: state.version + 1 }));
  es.addEventListener('signed-out', (e) => {
    const d = JSON.parse((e as MessageEvent<string>).data) as { reason: string; message: string };
    stopLive();
    set({ session: { state: 'signed-out', reason: d.reason, message: d.message } });
  });
  es.onerror = () => {
    if (source !== es) return;
    set({ link: 'down' });
    if (es.readyState === EventSource.CLOSED) {
      // The server answered, but not with a stream (401, or a proxy error): find out which, then retry.
      stopLive();
      retry = setTimeout(() => void checkSession(), 2000);
    }
  };
}

export interface Loaded<T> {
  data: T | undefined;
  error: HttpError | undefined;
  reload: () => void;
}

/**
 * GETs `path` now, when it changes, and whenever the server says something
 * changed; keeps the last answer while refetching. Requests overlap: the
 * newest answer wins, and an answer still shows if a change arrived before
 * it (LatestAnswer).
 */
export function useApi<T>(path: string | null): Loaded<T> {
  const { version } = useAppState();
  const [data, setData] = useState<{ path: string; value: T } | undefined>(undefined);
  const [error, setError] = useState<HttpError | undefined>(undefined);
  const [nonce, setNonce] = useState(0);
  const latest = useRef(new LatestAnswer());
  const mounted = useRef(true);
  useEffect(
    () => () => {
      mounted.current = false;
    },
    [],
  );
  useEffect(() => {
    if (path === null) return;
    const ticket = latest.current.issue(path);
    api.get<T>(path).then(
      (value) => {
        if (!mounted.current || !latest.current.accept(path, ticket)) return;
        setData({ path, value });
        setError(undefined);
      },
      (err: unknown) => {
        if (mounted.current && latest.current.accept(path, ticket)) setError(err as HttpError);
      },
    );
  }, [path, version, nonce]);
  return { data: data?.path === path ? data.value : undefined, error, reload: () => setNonce((n) => n + 1) };
}
