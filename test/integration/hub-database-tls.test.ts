// The hub reaches PostgreSQL over TLS as manifests/hub/ha configures it
// (`?sslmode=verify-full&sslrootcert=<ca file>` in FLEETLET_HUB_DATABASE): a
// real hub process against a real PostgreSQL that admits TLS connections
// only. With the CA that signed the server's certificate the replica starts
// and serves; with another CA it refuses to start with one line naming the
// certificate, before it listens.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { exportPrivateKeyPem, generateReleaseKey } from '../../src/protocol/signing.ts';
import { startPostgres, type PrivatePostgres } from '../../src/testbed/postgres.ts';
import { ADMIN_TOKEN, BOOTSTRAP_TOKEN } from '../support/hub-fixture.ts';
import { api, startReplica, stopReplicas, type Replica } from '../support/hub-replicas.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** A CA, and a server certificate it signed for 127.0.0.1 and localhost. */
function certificates(dir: string): { ca: string; otherCa: string; cert: string; key: string } {
  const openssl = (args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  for (const ca of ['ca', 'other-ca']) openssl(['req', '-x509', ...ec, '-keyout', `${ca}.key`, '-out', `${ca}.crt`, '-days', '2', '-subj', `/CN=fleetlet test ${ca}`]);
  openssl(['req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost']);
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'san.ext']);
  return { ca: join(dir, 'ca.crt'), otherCa: join(dir, 'other-ca.crt'), cert: readFileSync(join(dir, 'server.crt'), 'utf8'), key: readFileSync(join(dir, 'server.key'), 'utf8') };
}

describe('the hub on PostgreSQL over TLS', () => {
  let postgres: PrivatePostgres;
  let dir: string;
  let certs: ReturnType<typeof certificates>;
  let database: string;
  let keyFile: string;
  const replicas: Replica[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fleetlet-db-tls-'));
    certs = certificates(dir);
    postgres = await startPostgres({ tls: { cert: certs.cert, key: certs.key } });
    database = await postgres.createDatabase('hub');
    keyFile = join(dir, 'release.pem');
    writeFileSync(keyFile, exportPrivateKeyPem(generateReleaseKey().privateKey), { mode: 0o600 });
  });
  after(async () => {
    await stopReplicas(replicas);
    await postgres?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the server admits TLS only: a plaintext connection is refused', async () => {
    const plain = new pg.Client({ connectionString: `${database}?sslmode=disable` });
    await assert.rejects(plain.connect(), /no encryption|pg_hba\.conf rejects/);
    await plain.end().catch(() => undefined);
  });

  it('with the CA that signed the server\'s certificate (verify-full), a replica starts, is ready and stores what it is sent', async () => {
    const replica = await startReplica('tls', `${database}?sslmode=verify-full&sslrootcert=${certs.ca}`, keyFile);
    replicas.push(replica);
    assert.equal((await api(replica.port, 'GET', '/readyz')).status, 200);
    const labelled = await api(replica.port, 'POST', '/api/v1/bootstrap-tokens', { description: 'over TLS' });
    assert.equal(labelled.status, 201, JSON.stringify(labelled.body));
    // Every connection the replica holds to its database is encrypted (the server would refuse any other, too).
    const admin = new pg.Client({ connectionString: postgres.url('postgres'), ssl: { ca: readFileSync(certs.ca, 'utf8') } });
    await admin.connect();
    try {
      const { rows } = await admin.query<{ tls: string; plain: string }>(
        `SELECT count(*) FILTER (WHERE s.ssl) AS tls, count(*) FILTER (WHERE NOT s.ssl) AS plain
           FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.datname = 'hub'`,
      );
      assert.ok(Number(rows[0]?.tls) >= 2, `the replica's connections over TLS: ${JSON.stringify(rows)}`);
      assert.equal(Number(rows[0]?.plain), 0);
    } finally {
      await admin.end();
    }
  });

  it('with another CA, the replica refuses to start with one line naming the certificate, and never listens', async () => {
    const child = spawn(process.execPath, [join(root, 'bin/fleetlet.ts'), 'hub', '--port', '0', '--release-key', keyFile], {
      env: { ...process.env, FLEETLET_HUB_DATABASE: `${database}?sslmode=verify-full&sslrootcert=${certs.otherCa}`, FLEETLET_ADMIN_TOKEN: ADMIN_TOKEN, FLEETLET_BOOTSTRAP_TOKENS: BOOTSTRAP_TOKEN, LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    assert.notEqual(code, 0);
    assert.doesNotMatch(stdout, /hub listening/);
    const lines = stderr.trim().split('\n');
    assert.equal(lines.length, 1, `one line, no stack trace: ${stderr}`);
    assert.match(lines[0] ?? '', /cannot open the hub database.*certificate/i);
    assert.doesNotMatch(lines[0] ?? '', new RegExp(ADMIN_TOKEN));
  });
});
