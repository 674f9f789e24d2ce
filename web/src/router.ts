// Client-side routes on the History API: links are plain <a href>, so they
// work with the keyboard, open in a new tab and survive a reload (the server
// answers every page path with the app).
import { useEffect, useState } from 'preact/hooks';

const listeners = new Set<() => void>();

export function navigate(href: string): void {
  history.pushState(null, '', href);
  for (const l of listeners) l();
  window.scrollTo(0, 0);
}

export function useLocation(): URL {
  const [, force] = useState(0);
  useEffect(() => {
    const l = () => force((n) => n + 1);
    listeners.add(l);
    window.addEventListener('popstate', l);
    return () => {
      listeners.delete(l);
      window.removeEventListener('popstate', l);
    };
  }, []);
  return new URL(location.href);
}

/** Same-origin link clicks (without modifier keys) stay in the page. */
export function interceptLinks(): void {
  document.addEventListener('click', (e) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    const a = (e.target as Element | null)?.closest('a');
    if (!a || a.target || a.hasAttribute('download')) return;
    const url = new URL(a.href, location.href);
    if (url.origin !== location.origin || url.pathname.startsWith('/api/')) return;
    e.preventDefault();
    navigate(url.pathname + url.search);
  });
}

/** A URL with some query parameters replaced (undefined removes one). */
export function withQuery(url: URL, params: Record<string, string | string[] | undefined>): string {
  const next = new URL(url.href);
  for (const [k, v] of Object.entries(params)) {
    next.searchParams.delete(k);
    if (Array.isArray(v)) for (const item of v) next.searchParams.append(k, item);
    else if (v !== undefined && v !== '') next.searchParams.set(k, v);
  }
  return next.pathname + next.search;
}
