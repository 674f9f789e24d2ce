// A private PostgreSQL for tests and benchmarks: initdb in a temporary
// directory, started on a free port on 127.0.0.1, torn down (process and
// files) at the end, like the Kubernetes control plane. initdb refuses to run
// as root: as root, the cluster is made and run by the unprivileged
// `postgres` user of the Debian package (scripts/setup.sh installs it).
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './control-plane.ts';

const run = promisify(execFile);

export class PostgresHarnessError extends Error {
  override readonly name = 'PostgresHarnessError';
}

export interface PrivatePostgres {
  /** postgres://fleetlet@127.0.0.1:port/<db> for a database made by createDatabase. */
  url(database: string): string;
  port: number;
  dir: string;
  /** A fresh, empty database. */
  createDatabase(name: string): Promise<string>;
  /** pg_ctl restart: every connection breaks, the data stays. */
  restart(): Promise<void>;
  /** pg_ctl stop (fast): every connection breaks and new ones are refused until startServer; the data stays. */
  stopServer(): Promise<void>;
  startServer(): Promise<void>;
  stop(): Promise<void>;
}

const VERSIONS = ['17', '16', '15'];

/** The newest PostgreSQL server binaries on this machine (Debian layout), or PG_BINDIR. */
export function postgresBinDir(): string {
  const candidates = [process.env.PG_BINDIR, ...VERSIONS.map((v) => `/usr/lib/postgresql/${v}/bin`)].filter((d): d is string => d !== undefined && d !== '');
  const found = candidates.find((d) => existsSync(join(d, 'initdb')) && existsSync(join(d, 'pg_ctl')));
  if (found === undefined) throw new PostgresHarnessError(`no PostgreSQL server binaries in ${candidates.join(', ')}: install the Debian package "postgresql" (scripts/setup.sh does)`);
  return found;
}

/** A server certificate and its key (PEM) for PostgreSQL to serve TLS with. */
export interface PostgresTls {
  cert: string;
  key: string;
}

/**
 * `tls`: the server serves TLS with this certificate and refuses every TCP
 * connection that is not encrypted (hostssl only), so a client that gets in
 * spoke TLS.
 */
export async function startPostgres(o: { log?: (line: string) => void; tls?: PostgresTls } = {}): Promise<PrivatePostgres> {
  const bin = postgresBinDir();
  const root = userInfo().uid === 0;
  const dir = mkdtempSync(join(tmpdir(), 'fleetlet-pg-'));
  const data = join(dir, 'data');
  const port = await freePort();
  // As root, commands run as `postgres`, which must own the directory.
  const as = async (cmd: string, args: string[]): Promise<string> => {
    const [file, argv] = root ? ['runuser', ['-u', 'postgres', '--', join(bin, cmd), ...args]] : [join(bin, cmd), args];
    try {
      const { stdout } = await run(file, argv, { cwd: dir, maxBuffer: 16 * 1024 * 1024 });
      return stdout;
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new PostgresHarnessError(`${cmd} failed: ${(e.stderr ?? e.message).trim().split('\n').slice(-5).join(' | ')}`);
    }
  };
  if (root) {
    const { uid, gid } = await idOf('postgres');
    chownSync(dir, uid, gid);
  }
  chmodSync(dir, 0o700);
  const started = Date.now();
  await as('initdb', ['-D', data, '-U', 'fleetlet', '-A', 'trust', '-E', 'UTF8', '--no-locale', '--no-sync']);
  const settings = ['-c', 'listen_addresses=127.0.0.1', '-c', `port=${port}`, '-c', `unix_socket_directories=${dir}`, '-c', 'max_connections=200', '-c', 'shared_buffers=64MB'];
  if (o.tls !== undefined) settings.push(...(await tlsSettings(dir, o.tls, root)));
  const start = (): Promise<string> => as('pg_ctl', ['-D', data, '-l', join(dir, 'postgres.log'), '-w', '-t', '60', '-o', settings.join(' '), 'start']);
  try {
    await start();
  } catch (err) {
    const log = existsSync(join(dir, 'postgres.log')) ? readFileSync(join(dir, 'postgres.log'), 'utf8').slice(-2000) : '';
    rmSync(dir, { recursive: true, force: true });
    throw new PostgresHarnessError(`${(err as Error).message}\n${log}`);
  }
  o.log?.(`PostgreSQL from ${bin} on 127.0.0.1:${port}, up in ${Date.now() - started} ms`);
  const url = (database: string): string => `postgres://fleetlet@127.0.0.1:${port}/${database}`;
  let stopped = false;
  const stopServer = async (): Promise<void> => void (await as('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']));
  const startServer = async (): Promise<void> => void (await start());
  return {
    url,
    port,
    dir,
    async createDatabase(name) {
      await as('psql', ['-h', '127.0.0.1', '-p', String(port), '-U', 'fleetlet', '-d', 'postgres', '-v', 'ON_ERROR_STOP=1', '-c', `CREATE DATABASE "${name.replace(/"/g, '')}"`]);
      return url(name);
    },
    async restart() {
      await stopServer();
      await startServer();
    },
    stopServer,
    startServer,
    async stop() {
      if (stopped) return;
      stopped = true;
      try {
        await as('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

/** Writes the certificate, its key (0600, the server refuses a readable one) and an hba file that admits TLS only. */
async function tlsSettings(dir: string, tls: PostgresTls, root: boolean): Promise<string[]> {
  const files = { cert: join(dir, 'server.crt'), key: join(dir, 'server.key'), hba: join(dir, 'pg_hba.conf') };
  writeFileSync(files.cert, tls.cert);
  writeFileSync(files.key, tls.key, { mode: 0o600 });
  writeFileSync(files.hba, 'local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 0.0.0.0/0 reject\n');
  if (root) {
    const { uid, gid } = await idOf('postgres');
    for (const f of Object.values(files)) chownSync(f, uid, gid);
  }
  return ['-c', 'ssl=on', '-c', `ssl_cert_file=${files.cert}`, '-c', `ssl_key_file=${files.key}`, '-c', `hba_file=${files.hba}`];
}

async function idOf(user: string): Promise<{ uid: number; gid: number }> {
  const uid = Number((await run('id', ['-u', user])).stdout.trim());
  const gid = Number((await run('id', ['-g', user])).stdout.trim());
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) throw new PostgresHarnessError(`no user "${user}" to run PostgreSQL as (initdb refuses root)`);
  return { uid, gid };
}
