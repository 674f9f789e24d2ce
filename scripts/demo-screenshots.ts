// `node scripts/demo-screenshots.ts [dir]` (default docs/dashboard): runs `npm run demo` as a person would,
// on a terminal (`script`), so it stays up at its end; follows its rollouts in headless chromium signed in
// with the viewer token it prints, without reloading the page, and takes screenshots: a rollout while it
// runs, the broken release's rollout once it paused, the overview at the end. Then Ctrl-C.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { stripVTControlCharacters } from 'node:util';
import { fileURLToPath } from 'node:url';
import { openBrowser, signIn } from '../test/support/browser.ts';

const root = fileURLToPath(new URL('../', import.meta.url));
const out = process.argv[2] ?? join(root, 'docs/dashboard');
const demo = spawn('script', ['-qfec', 'npm run demo', '/dev/null'], { cwd: root, detached: true, stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env } });
let text = '';
const seen: ((t: string) => void)[] = [];
demo.stdout.on('data', (d: Buffer) => {
  process.stdout.write(d);
  text += d.toString();
  for (const s of seen) s(text);
});
const waitText = (re: RegExp, timeoutMs = 900_000) =>
  new Promise<RegExpExecArray>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ${re} in the demo's output`)), timeoutMs);
    const check = (all: string) => {
      const m = re.exec(stripVTControlCharacters(all));
      if (m) {
        clearTimeout(t);
        resolve(m);
      }
    };
    seen.push(check);
    check(text);
  });
const stop = () => {
  try {
    // Ctrl-C to the demo's process group, as the terminal sends it.
    process.kill(-(demo.pid ?? 0), 'SIGINT');
  } catch {
    // It ended already.
  }
};
try {
  const url = (await waitText(/Follow along in the dashboard: (http:\/\/\S+)/))[1] ?? '';
  const viewer = (await waitText(/sign in with the viewer token (\S+)/))[1] ?? '';
  console.log(`\n[demo-shot] dashboard ${url}, viewer token ${viewer.slice(0, 6)}…`);
  const browser = await openBrowser({ width: 1400, height: 1000 });
  try {
    const page = browser.page;
    await signIn(page, url, viewer);
    // While upgrade-1-1 runs: the overview and the rollout, live.
    await waitText(/rollout upgrade-1-1: canary group first/);
    await page.goto(`${url}/rollouts/upgrade-1-1`);
    await page.waitForSelector('[data-testid="members"] tr[data-cluster]', { timeout: 60_000 });
    await page.waitForTimeout(4000);
    await page.screenshot({ path: join(out, 'demo-rollout-running.png'), fullPage: true });
    console.log('\n[demo-shot] took demo-rollout-running.png');
    // Its broken release: the canary rolls back and the rollout pauses; the open page follows.
    await waitText(/rollout upgrade-1-2: canary group first/);
    await page.goto(`${url}/rollouts/upgrade-1-2`);
    // The open page follows the rollout to its pause (no reload).
    await page.locator('h1 [data-state="Paused"]').waitFor({ timeout: 300_000 });
    await page.screenshot({ path: join(out, 'demo-rollout-paused.png'), fullPage: true });
    console.log('\n[demo-shot] took demo-rollout-paused.png');
    await waitText(/The hub and its dashboard stay up/);
    await page.goto(url);
    await page.waitForSelector('[data-testid="rollouts"], #active-rollouts', { timeout: 30_000 });
    await page.waitForTimeout(2000);
    await page.screenshot({ path: join(out, 'demo-overview.png'), fullPage: true });
    console.log('\n[demo-shot] took demo-overview.png');
  } finally {
    await browser.close();
  }
} finally {
  stop();
  await new Promise((resolve) => demo.once('exit', resolve));
  console.log(`\n[demo-shot] the demo stopped (${demo.exitCode ?? demo.signalCode})`);
}
