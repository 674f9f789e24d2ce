// `fleetlet agent` as the kubelet runs it: probes and metrics over HTTP
// while it upgrades, SIGTERM in the middle of an upgrade stops it cleanly
// (exit 0, the attempt left where the journal says), and a restarted agent
// resumes and finishes. Every log line about the attempt names its id.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { exportPublicKeyPem } from '../../src/protocol/signing.ts';
import { Journal } from '../../src/store/journal.ts';
import { imageAgentArgv } from '../../scripts/build.ts';
import { testNamespace } from '../support/cluster.ts';
import { testPolicyYaml } from '../support/test-policy.ts';
import { addonsRelease, testSigner } from '../support/releases.ts';


interface LogLine {
  level: number;
  msg: string;
  attemptId?: string;
  to?: string;
  port?: number;
  [k: string]: unknown;
}

interface Agent {
  child: ChildProcess;
  lines: LogLine[];
  stderr: () => string;
  /** Resolves with the first log line matching, rejects if the process exits first. */
  waitFor(what: string, match: (l: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function startAgent(dir: string, releaseFile: string, namespace: string): Agent {
  writeFileSync(join(dir, 'policy.yaml'), testPolicyYaml());
  const child = spawn(
    process.execPath,
    imageAgentArgv([
      '--cluster-id=shutdown-test',
      `--journal=${join(dir, 'journal.db')}`,
      `--kubeconfig=${process.env.FLEETLET_TEST_KUBECONFIG}`,
      `--release-key=${join(dir, 'release.pub.pem')}`,
      `--release-file=${releaseFile}`,
      `--namespace=${namespace}`,
      `--allowed-namespaces=${namespace}`,
      `--policy=${join(dir, 'policy.yaml')}`,
      '--poll-ms=200',
      '--http-addr=127.0.0.1:0',
      '--exit-when-done',
    ]),
    { env: { ...process.env, LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const lines: LogLine[] = [];
  const waiters: { match: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];
  let buf = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (d: string) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = JSON.parse(buf.slice(0, i)) as LogLine;
      buf = buf.slice(i + 1);
      lines.push(line);
      for (const w of [...waiters]) {
        if (!w.match(line)) continue;
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  });
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return {
    child,
    lines,
    stderr: () => stderr,
    exited,
    waitFor(what, match, timeoutMs = 60_000) {
      const seen = lines.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise<LogLine>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}; stderr: ${stderr}`)), timeoutMs);
        waiters.push({ match, resolve: (l) => (clearTimeout(timer), resolve(l)) });
        void exited.then(({ code, signal }) => (clearTimeout(timer), reject(new Error(`agent exited (${code ?? signal}) before ${what}; stderr: ${stderr}; log: ${lines.map((l) => l.msg).join(' | ')}`))));
      });
    },
  };
}

/** Prometheus text sample, no labels other than those given. */
const sample = (body: string, name: string, labels: string) => Number(new RegExp(`^${name}\\{${labels}\\} (\\S+)$`, 'm').exec(body)?.[1]);

test('SIGTERM mid-upgrade exits 0 with the attempt resumable; a restarted agent finishes it', async () => {
  const ns = await testNamespace('sigterm');
  const dir = mkdtempSync(join(tmpdir(), 'fleetlet-sigterm-'));
  const signer = testSigner();
  writeFileSync(join(dir, 'release.pub.pem'), exportPublicKeyPem(signer.publicKey));
  // Stage 0 soaks for a while: a long, well-defined "middle of the upgrade" to stop in.
  const release = addonsRelease(ns.name, 1, { dns: '1.0.0', proxy: '1.0.0', metrics: '1.0.0' });
  for (const c of release.components) if (c.stage === 0) c.health = { progressDeadlineSeconds: 30, soakSeconds: 6 };
  const releaseFile = join(dir, 'release.json');
  writeFileSync(releaseFile, JSON.stringify(signer.sign(release)));
  const agents: Agent[] = [];
  try {
    const first = startAgent(dir, releaseFile, ns.name);
    agents.push(first);
    const listening = await first.waitFor('the HTTP server', (l) => l.msg === 'health and metrics server listening');
    const base = `http://127.0.0.1:${listening.port}`;
    const soaking = await first.waitFor('stage 0 soaking', (l) => l.to === 'Soaking');

    // Probes and metrics while the upgrade runs.
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    const ready = await fetch(`${base}/readyz?verbose`);
    assert.equal(ready.status, 200, await ready.clone().text());
    assert.match(await ready.text(), /\[\+\]journal ok\n\[\+\]kubernetes-api ok/);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.equal(sample(metrics, 'fleetlet_agent_attempt_phase', 'phase="Soaking"'), 1);
    assert.equal(sample(metrics, 'fleetlet_agent_info', 'cluster_id="shutdown-test",version="[^"]*"'), 1);
    assert.match(metrics, /^fleetlet_agent_process_resident_memory_bytes \d+/m);

    const stopAt = Date.now();
    first.child.kill('SIGTERM');
    const stopped = await first.exited;
    assert.deepEqual(stopped, { code: 0, signal: null }, first.stderr());
    assert.ok(Date.now() - stopAt < 5_000, 'stopped promptly: the soak wait was cut short, not sat out');
    assert.ok(first.lines.some((l) => l.msg.startsWith('stopping:') && l.signal === 'SIGTERM'));
    assert.ok(first.lines.some((l) => l.msg === 'agent stopped' && l.code === 0));

    // Stopped mid-upgrade: the journal names the unfinished state (read-only, as an observer).
    const peek = new Database(join(dir, 'journal.db'), { readonly: true });
    const row = peek.prepare('SELECT id, phase, stage, finished_at FROM attempts').get() as { id: string; phase: string; stage: number; finished_at: string | null };
    peek.close();
    assert.deepEqual({ id: row.id, phase: row.phase, stage: row.stage, finished: row.finished_at !== null }, { id: soaking.attemptId, phase: 'Soaking', stage: 0, finished: false });

    const second = startAgent(dir, releaseFile, ns.name);
    agents.push(second);
    const resumed = await second.waitFor('resume', (l) => l.msg === 'resuming unfinished attempt');
    assert.equal(resumed.attemptId, soaking.attemptId);
    const done = await second.exited;
    assert.deepEqual(done, { code: 0, signal: null }, second.stderr());

    const journal = Journal.open(join(dir, 'journal.db'));
    try {
      const a = journal.attempts.latest()!;
      assert.equal(a.id, soaking.attemptId);
      assert.equal(a.phase, 'Succeeded', `${a.reason}: ${a.message}`);
      assert.equal(a.starts, 2, 'started in the first process, resumed once in the second (not a crash loop)');
      // The restart did not redo stage 0: it went on from Soaking.
      const phases = journal.attempts.transitions(a.id).map((t) => `${t.phase}:${t.stage ?? ''}`);
      assert.deepEqual(phases.filter((p) => p === 'Upgrading:0'), ['Upgrading:0']);
    } finally {
      journal.close();
    }

    // Every log line about the attempt carries its id (both processes).
    const attemptLines = [...first.lines, ...second.lines].filter((l) => /^attempt |attempt|resuming/.test(l.msg) || l.to !== undefined);
    assert.ok(attemptLines.length >= 6, `saw the attempt's lines: ${attemptLines.map((l) => l.msg).join(' | ')}`);
    for (const l of attemptLines) assert.equal(l.attemptId, soaking.attemptId, `line without the attempt id: ${JSON.stringify(l)}`);
  } finally {
    for (const a of agents) if (a.child.exitCode === null && a.child.signalCode === null) a.child.kill('SIGKILL');
    await ns.dispose();
  }
});
