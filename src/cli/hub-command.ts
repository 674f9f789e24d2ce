// `fleetlet hub`: the reference hub (WebSocket for agents, HTTP API for operators).
import { readFileSync } from 'node:fs';
import { Command, Option } from '@commander-js/extra-typings';
import { readSecretFile, readSecretLines } from '../lib/secret-file.ts';
import { ExitCode, UsageError, wholeNumber, type CommandContext } from './cli-support.ts';

export function hubCommand(ctx: CommandContext) {
  return new Command('hub')
    .description('run the reference hub: agents connect over WebSocket, operators use the HTTP API (docs/hub-api.md)')
    .addOption(new Option('--port <port>', 'port for both the agent endpoint (/api/v1/agent) and the API (/api/v1)').env('FLEETLET_HUB_PORT').default(8443).argParser(wholeNumber(0)))
    .addOption(new Option('--host <addr>', 'address to bind; 0.0.0.0 (with TLS) to serve a fleet').env('FLEETLET_HUB_HOST').default('127.0.0.1'))
    .addOption(new Option('--db <path>', 'SQLite database file (one hub on one machine)').env('FLEETLET_HUB_DB').default('./fleetlet-hub.db'))
    .addOption(
      new Option('--database <url>', 'postgres://user@host:port/db: keep state in PostgreSQL, shared by several hub replicas (docs/hub-ha.md); replaces --db')
        .env('FLEETLET_HUB_DATABASE'),
    )
    .addOption(new Option('--database-password-file <path>', 'file holding the PostgreSQL password (or set PGPASSWORD); never put it in --database').env('FLEETLET_HUB_DATABASE_PASSWORD_FILE'))
    .addOption(new Option('--release-key <pem>', 'Ed25519 private release key (see fleetlet keygen); every release and override is signed with it').env('FLEETLET_HUB_RELEASE_KEY'))
    .addOption(new Option('--admin-token-file <path>', 'file holding the admin token operators send as "Authorization: Bearer <token>"').env('FLEETLET_ADMIN_TOKEN_FILE'))
    .addOption(new Option('--admin-token <token>', 'the admin token itself; prefer the file or the environment: the command line shows in ps').env('FLEETLET_ADMIN_TOKEN'))
    .addOption(new Option('--bootstrap-tokens-file <path>', 'file of tokens agents may register with, one a line').env('FLEETLET_BOOTSTRAP_TOKENS_FILE'))
    .addOption(new Option('--bootstrap-token <token...>', 'a token agents may register with (repeatable; env: comma separated); prefer the file').env('FLEETLET_BOOTSTRAP_TOKENS'))
    .option('--heartbeat-ms <ms>', 'heartbeat period agents are told to keep', wholeNumber(100), 10_000)
    .option('--grace-multiplier <n>', "a cluster's lease: this many heartbeats without a word and it shows Unknown", wholeNumber(2), 5)
    .option('--release-ttl-ms <ms>', 'lifetime of a signed release or override (expiresAt - issuedAt)', wholeNumber(60_000), 7 * 24 * 3600 * 1000)
    .option('--rollout-tick-ms <ms>', 'how often rollouts are evaluated when nothing reported', wholeNumber(50), 1000)
    .option('--tls-key <pem>', 'serve https/wss with this private key (with --tls-cert)')
    .option('--tls-cert <pem>', 'certificate chain for --tls-key')
    .addOption(new Option('--dashboard-port <port>', 'serve the fleet dashboard (docs/dashboard.md) on this port, signed in with operator tokens; 0: any free one; off when unset').env('FLEETLET_DASHBOARD_PORT').argParser(wholeNumber(0)))
    .addHelpText('after', '\nLogs JSON lines on stdout (LOG_LEVEL, default info), "hub listening" once with both URLs. Stops cleanly on SIGTERM or SIGINT.')
    .action(async (o, cmd) => {
      if (o.database !== undefined && !/^postgres(ql)?:\/\//.test(o.database)) throw new UsageError('--database must be a postgres:// URL (for a SQLite file use --db)');
      if (o.database !== undefined && cmd.getOptionValueSource('database') === 'cli' && hasPassword(o.database)) {
        throw new UsageError('--database must not carry the password on the command line (other users can read it): set PGPASSWORD, FLEETLET_HUB_DATABASE or --database-password-file');
      }
      const adminToken = o.adminTokenFile ? readSecretFile(o.adminTokenFile) : o.adminToken;
      if (o.adminTokenFile && adminToken === undefined) throw new UsageError(`the admin token file ${o.adminTokenFile} is missing or empty`);
      if (!o.releaseKey || !adminToken) throw new UsageError('--release-key (Ed25519 private key PEM, see `fleetlet keygen`) and --admin-token-file (or FLEETLET_ADMIN_TOKEN) are required');
      if (Boolean(o.tlsKey) !== Boolean(o.tlsCert)) throw new UsageError('--tls-key and --tls-cert go together');
      // From the environment the list arrives as one comma-separated string.
      const given = o.bootstrapToken as string | string[] | undefined;
      const bootstrapTokens = [...(typeof given === 'string' ? given.split(',') : (given ?? [])), ...(o.bootstrapTokensFile ? readSecretLines(o.bootstrapTokensFile) : [])].filter((t) => t !== '');
      const [{ default: pino }, { startHub }, { importPrivateKeyPem }, { HubDatabaseError }] = await Promise.all([
        import('pino'),
        import('../hub/start-hub.ts'),
        import('../protocol/signing.ts'),
        import('../hub/store/sql.ts'),
      ]);
      const logger = pino({ name: 'fleetlet-hub', level: process.env.LOG_LEVEL ?? 'info' });
      for (const flag of ['adminToken', 'bootstrapToken'] as const) {
        if (cmd.getOptionValueSource(flag) === 'cli') logger.warn(`--${flag === 'adminToken' ? 'admin-token' : 'bootstrap-token'} on the command line shows in ps: use the file option or the environment`);
      }
      const databasePassword = o.databasePasswordFile === undefined ? undefined : readFileSync(o.databasePasswordFile, 'utf8').trim();
      let hub;
      try {
        hub = await startHub({
          port: o.port,
          host: o.host,
          dbPath: o.db,
          database: o.database,
          databasePassword,
          releaseKey: importPrivateKeyPem(readFileSync(o.releaseKey, 'utf8')),
          adminToken,
          bootstrapTokens,
          heartbeatMs: o.heartbeatMs,
          graceMultiplier: o.graceMultiplier,
          releaseTtlMs: o.releaseTtlMs,
          rolloutTickMs: o.rolloutTickMs,
          ...(o.tlsKey && o.tlsCert ? { tls: { key: readFileSync(o.tlsKey), cert: readFileSync(o.tlsCert) } } : {}),
          ...(o.dashboardPort !== undefined ? { dashboard: { port: o.dashboardPort, host: o.host } } : {}),
          now: () => new Date(),
          logger,
        });
      } catch (err) {
        // One line an operator can act on, not a stack trace.
        if (!(err instanceof HubDatabaseError)) throw err;
        ctx.io.err(`error: ${err.message}\n`);
        ctx.exit(ExitCode.Failed);
        return;
      }
      await new Promise<void>((resolve) => {
        process.once('SIGTERM', resolve);
        process.once('SIGINT', resolve);
      });
      await hub.close();
      ctx.exit(ExitCode.Ok);
    });
}

function hasPassword(url: string): boolean {
  try {
    return new URL(url).password !== '';
  } catch {
    return false;
  }
}
