// The image, as far as it can be checked without a Docker engine: the
// final stage's layout is assembled from the Dockerfile's own COPY lines
// (test/support/dockerfile.ts) and its ENTRYPOINT runs from there.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Journal } from '../../src/store/journal.ts';
import { assembleFinalStage, dockerignore, parseDockerfile, type Assembled } from '../support/dockerfile.ts';

const repo = new URL('../../', import.meta.url).pathname;

describe('Dockerfile', () => {
  let rootfs: string;
  let image: Assembled;

  before(() => {
    rootfs = mkdtempSync(join(tmpdir(), 'fleetlet-image-'));
    image = assembleFinalStage({ context: repo, rootfs });
  });
  after(() => rmSync(rootfs, { recursive: true, force: true }));

  /** Runs the image's entrypoint (or another command) in the assembled layout: `docker run image ...args`. */
  const run = (args: string[], entrypoint = image.entrypoint) => {
    const [cmd, ...rest] = entrypoint;
    assert.equal(cmd, 'node', 'the entrypoint runs node');
    // Absolute paths inside the image live under rootfs here.
    const argv = [...rest, ...args].map((a) => (a.startsWith('/') ? join(rootfs, a) : a));
    return spawnSync(process.execPath, argv, {
      cwd: join(rootfs, image.workdir),
      // The image's environment only: nothing from this shell (no FLEETLET_* leaking in).
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...image.env },
      encoding: 'utf8',
      timeout: 30_000,
    });
  };

  test('two stages on Node 24: bundles built with compilers and dev dependencies, runtime without them, not root', () => {
    const stages = parseDockerfile(readFileSync(join(repo, 'Dockerfile'), 'utf8'));
    assert.equal(stages.length, 2);
    const [build, runtime] = stages as [(typeof stages)[0], (typeof stages)[0]];
    assert.match(build.from, /^node:24-bookworm-slim$/);
    assert.match(runtime.from, /^(node:24-bookworm-slim|gcr\.io\/distroless\/nodejs24-debian12(:nonroot)?)$/);
    const buildRun = build.instructions.filter((i) => i.op === 'RUN').map((i) => i.args).join('\n');
    assert.match(buildRun, /python3/);
    assert.match(buildRun, /g\+\+/);
    assert.match(buildRun, /npm ci\b/);
    assert.match(buildRun, /node scripts\/build\.ts --runtime-dir/);
    assert.ok(!runtime.instructions.some((i) => i.op === 'RUN' && /apt-get|npm (ci|install)/.test(i.args)), 'no compilers or installs in the runtime stage');
    assert.equal(image.user, '65532:65532');
    assert.equal(image.entrypoint[0], 'node');
    assert.equal(image.entrypoint.at(-1), '/app/dist/agent.mjs', 'the image runs the agent bundle');
    assert.ok(runtime.instructions.some((i) => i.op === 'VOLUME' && i.args.includes('/var/lib/fleetlet')), 'the journal directory is a volume');
  });

  test('the image holds the bundles, better-sqlite3 with one native binary, and nothing else', () => {
    for (const name of ['agent', 'hub', 'fleetlet']) {
      assert.ok(existsSync(join(rootfs, `app/dist/${name}.mjs`)), `dist/${name}.mjs`);
      assert.ok(existsSync(join(rootfs, `app/dist/${name}.mjs.map`)), `dist/${name}.mjs.map`);
    }
    assert.deepEqual(readdirSync(join(rootfs, 'app/node_modules')), ['better-sqlite3'], 'no node_modules but better-sqlite3');
    const natives = readdirSync(join(rootfs, 'app/node_modules/better-sqlite3'), { recursive: true }).map(String).filter((f) => f.endsWith('.node'));
    assert.equal(natives.length, 1, `one native binary, not one per platform: ${natives.join(', ')}`);
    assert.ok(!existsSync(join(rootfs, 'app/node_modules/better-sqlite3/deps')), 'no SQLite sources');
    assert.ok(!existsSync(join(rootfs, 'app/src')), 'no TypeScript sources');
    assert.ok(!existsSync(join(rootfs, 'app/bin')));
    assert.ok(!image.copied.some((p) => p.startsWith('test/') || p.endsWith('.test.ts')), 'no tests in the image');
  });

  test('`docker run <image> --help` prints the agent usage and exits 0', () => {
    const res = run(['--help']);
    assert.equal(res.status, 0, res.stderr);
    assert.match(res.stdout, /^Usage: fleetlet agent \[options\]/);
    assert.match(res.stdout, /--http-addr/);
  });

  test('`docker run --entrypoint node <image> /app/dist/fleetlet.mjs --help` lists every command', () => {
    const res = run(['--help'], ['node', '/app/dist/fleetlet.mjs']);
    assert.equal(res.status, 0, res.stderr);
    assert.match(res.stdout, /Commands:\n\s+agent/);
  });

  test('the journal opens in the image: better-sqlite3 loads its one native binary from the bundle', () => {
    Journal.open(join(rootfs, image.workdir, 'test-journal.db')).close();
    const res = run(['status', '--journal=test-journal.db'], ['node', '/app/dist/fleetlet.mjs']);
    assert.equal(res.status, 0, res.stderr);
    assert.match(res.stdout, /no upgrade attempts yet/);
  });

  test("the agent bundle loads neither Node's own undici nor the CommonJS lexer (docs/footprint.md)", () => {
    // What the agent loads before it does anything; each of these is megabytes resident.
    const probe = "process.on('exit', () => console.error(JSON.stringify(process.moduleLoadList)));";
    const res = run(['--help'], ['node', '--import', `data:text/javascript,${encodeURIComponent(probe)}`, '/app/dist/agent.mjs']);
    assert.equal(res.status, 0, res.stderr);
    const loaded = JSON.parse(res.stderr.trim().split('\n').at(-1)!) as string[];
    assert.ok(loaded.some((m) => m.includes('better_sqlite3') || m.includes('internal/modules/cjs/loader')), 'the probe saw the module list');
    assert.ok(!loaded.includes('NativeModule internal/deps/undici/undici'), "Node's bundled undici is loaded: an ES import of node:http?");
    assert.ok(!loaded.includes('NativeModule internal/deps/cjs-module-lexer/lexer'), 'the CommonJS lexer is loaded: an ES import of a CommonJS package?');
  });

  test('the agent without a cluster id exits 2 and says what is missing', () => {
    const res = run([]);
    assert.equal(res.status, 2, `${res.stdout}${res.stderr}`);
    assert.match(`${res.stdout}${res.stderr}`, /--cluster-id \(or FLEETLET_CLUSTER_ID\) is required/);
    assert.doesNotMatch(res.stderr, /ERR_MODULE_NOT_FOUND|Cannot find (module|package)/);
  });

  test('an unknown flag exits 2 with the usage, not a stack trace', () => {
    const res = run(['--bogus']);
    assert.equal(res.status, 2);
    assert.match(res.stderr, /unknown option '--bogus'/);
    assert.doesNotMatch(res.stderr, /\n\s+at /);
  });
});

describe('.dockerignore rules', () => {
  test('directories, globs, and re-includes', () => {
    const ignored = dockerignore('# comment\ntest\n**/*.test.ts\n*.db\nsrc/secret\n!src/secret/keep.ts\n');
    assert.equal(ignored('test/unit/a.ts'), true);
    assert.equal(ignored('src/agent/a.test.ts'), true);
    assert.equal(ignored('src/agent/a.ts'), false);
    assert.equal(ignored('journal.db'), true);
    assert.equal(ignored('src/journal.db'), false, 'a root pattern without ** matches at the root only');
    assert.equal(ignored('src/secret/x.ts'), true);
    assert.equal(ignored('src/secret/keep.ts'), false);
  });

  test('the repository .dockerignore keeps out what the image must not carry and nothing it needs', () => {
    const ignored = dockerignore(readFileSync(join(repo, '.dockerignore'), 'utf8'));
    for (const p of ['node_modules/pino/package.json', '.git/HEAD', 'test/unit/journal.test.ts', 'journal.db', 'release.key.pem']) assert.equal(ignored(p), true, p);
    for (const p of ['package.json', 'package-lock.json', 'bin/fleetlet.ts', 'bin/fleetlet-agent.ts', 'src/cli/main.ts', 'scripts/build.ts']) assert.equal(ignored(p), false, p);
    assert.equal(ignored('scripts/setup.sh'), true);
  });
});
