// The dashboard's page shell: sign-in, navigation, the "hub unreachable"
// banner, and the routes.
import { render } from 'preact';
import { useEffect, useRef } from 'preact/hooks';
import { checkSession, signIn, signOut, useAppState } from './api.ts';
import { interceptLinks, useLocation } from './router.ts';
import { ClusterList, ClusterPage } from './views/clusters.tsx';
import { Hotfixes } from './views/hotfixes.tsx';
import { OverviewPage } from './views/overview.tsx';
import { RolloutList, RolloutPage } from './views/rollouts.tsx';

function SignIn({ reason, message }: { reason: string; message: string }) {
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => input.current?.focus(), []);
  return (
    <main id="main" class="sign-in">
      <h1>fleetlet dashboard</h1>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void signIn(input.current?.value ?? '');
        }}
      >
        {reason !== 'NoToken' && reason !== 'SignedOut' ? (
          <p class="refusal" role="alert">
            <strong>Not signed in ({reason}):</strong> {message}
          </p>
        ) : (
          <p>{message === 'you signed out' ? 'You signed out.' : 'Sign in with a token of this hub: a viewer token looks, an operator token may also act.'}</p>
        )}
        <label for="token">Token</label>
        <input id="token" name="token" type="password" autocomplete="off" required ref={input} />
        <button type="submit">Sign in</button>
      </form>
    </main>
  );
}

function Nav({ path }: { path: string }) {
  const { session } = useAppState();
  const item = (href: string, label: string, match: (p: string) => boolean) => (
    <li>
      <a href={href} aria-current={match(path) ? 'page' : undefined}>
        {label}
      </a>
    </li>
  );
  return (
    <header class="top">
      <a class="skip" href="#main">Skip to content</a>
      <span class="brand">fleetlet</span>
      <nav aria-label="Main">
        <ul>
          {item('/', 'Overview', (p) => p === '/')}
          {item('/clusters', 'Clusters', (p) => p.startsWith('/clusters'))}
          {item('/rollouts', 'Rollouts', (p) => p.startsWith('/rollouts'))}
          {item('/hotfixes', 'Hotfixes', (p) => p.startsWith('/hotfixes'))}
        </ul>
      </nav>
      <span class="who">
        {session.state === 'signed-in' ? <>Signed in as <strong data-testid="role">{session.role}</strong></> : null}
        <button type="button" class="link" onClick={() => void signOut()}>
          Sign out
        </button>
      </span>
    </header>
  );
}

function LinkBanner() {
  const { link } = useAppState();
  if (link !== 'down') return null;
  return (
    <div class="banner" role="alert" data-testid="unreachable">
      <span aria-hidden="true">⚠</span> The hub cannot be reached. Reconnecting by itself; what you see may be out of date.
    </div>
  );
}

function Routes({ url }: { url: URL }) {
  const p = url.pathname;
  let m: RegExpExecArray | null;
  if (p === '/') return <OverviewPage url={url} />;
  if (p === '/clusters') return <ClusterList url={url} />;
  if ((m = /^\/clusters\/([^/]+)$/.exec(p))) return <ClusterPage id={decodeURIComponent(m[1] ?? '')} />;
  if (p === '/rollouts') return <RolloutList url={url} />;
  if ((m = /^\/rollouts\/([^/]+)$/.exec(p))) return <RolloutPage name={decodeURIComponent(m[1] ?? '')} url={url} />;
  if (p === '/hotfixes') return <Hotfixes url={url} />;
  return (
    <section>
      <h1>Not found</h1>
      <p>
        There is no page {p}. <a href="/">Back to the overview</a>.
      </p>
    </section>
  );
}

function App() {
  const { session } = useAppState();
  const url = useLocation();
  useEffect(() => {
    document.title = `fleetlet · ${url.pathname === '/' ? 'overview' : url.pathname.slice(1)}`;
  }, [url.pathname]);
  // While the session is checked the page already asks for its data (one round trip instead of two); a 401 signs out.
  if (session.state === 'signed-out') return <SignIn reason={session.reason} message={session.message} />;
  return (
    <>
      <Nav path={url.pathname} />
      <LinkBanner />
      <main id="main" tabIndex={-1}>
        <Routes url={url} />
      </main>
    </>
  );
}

// When the script began to run (parsed and compiled): bench/dashboard.ts reads it to tell loading the script from the rest.
performance.mark('fleetlet:script-run');
interceptLinks();
const root = document.getElementById('app') as HTMLElement;
// The static "Loading…" text is not Preact's to diff: clear it first.
root.textContent = '';
render(<App />, root);
void checkSession();
