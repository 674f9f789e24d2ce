// `fleetlet token`: operator tokens (viewer, operator, admin) and bootstrap
// tokens, created, listed and revoked through the hub's HTTP API (admin
// only; docs/security.md). A token's text is printed once, when it is
// created: the hub keeps only its hash.
import { Command, InvalidArgumentError, Option } from '@commander-js/extra-typings';
import { ExitCode, configureTree, processIo, runCommand, wholeNumber, type CommandContext } from './cli-support.ts';
import { HubClientError, hubClient, hubSubcommand, type HubClientIo } from './hub-client.ts';

interface OperatorTokenView {
  id: string;
  name: string;
  role: string;
  createdAt: string;
  createdBy: string;
  revokedAt: string | null;
}

interface BootstrapTokenView {
  id: string;
  source: string;
  description: string | null;
  createdAt: string;
  expiresAt: string | null;
  maxUses: number | null;
  uses: number;
  revokedAt: string | null;
}

const roles = ['viewer', 'operator', 'admin'] as const;

function roleArg(text: string): (typeof roles)[number] {
  const role = roles.find((r) => r === text);
  if (!role) throw new InvalidArgumentError(`must be one of ${roles.join(', ')}`);
  return role;
}

export function tokenCommand(ctx: CommandContext, io: HubClientIo = { ...processIo(), fetch: globalThis.fetch, ...ctx.io }) {
  /** Hub errors become one line on stderr and exit 1. */
  const run = async (body: () => Promise<void>): Promise<void> => {
    try {
      await body();
      ctx.exit(ExitCode.Ok);
    } catch (err) {
      if (!(err instanceof HubClientError)) throw err;
      io.err(`fleetlet token: ${err.message}\n`);
      ctx.exit(ExitCode.Failed);
    }
  };
  const json = (v: unknown): void => io.out(`${JSON.stringify(v, null, 2)}\n`);
  const state = (t: { revokedAt: string | null }): string => (t.revokedAt ? `revoked ${t.revokedAt}` : 'active');

  const token = new Command('token')
    .description('create, list and revoke operator and bootstrap tokens on a hub (admin; docs/security.md)')
    .addHelpText('after', '\nEvery subcommand takes --hub (env FLEETLET_HUB_API), --token (env FLEETLET_ADMIN_TOKEN) and --json.\nA new token is printed once; the hub keeps only its hash.');

  token.addCommand(
    hubSubcommand('create')
      .description('create an operator token: viewer reads, operator also accepts clusters and runs releases and rollouts, admin also manages tokens and keys')
      .requiredOption('--name <name>', 'who or what holds it (shown in the audit table)')
      .addOption(new Option('--role <role>', roles.join(' | ')).argParser(roleArg).makeOptionMandatory())
      .action((o) => run(async () => {
        const t = (await hubClient(o, io)('POST', '/api/v1/operator-tokens', { name: o.name, role: o.role })) as OperatorTokenView & { token: string };
        if (o.json) return json(t);
        io.out(`${t.token}\n`);
        io.err(`created ${t.role} token ${t.id} for "${t.name}": shown once, keep it in a file or a Secret\n`);
      })),
  );
  token.addCommand(
    hubSubcommand('list')
      .description('operator tokens, without their text')
      .action((o) => run(async () => {
        const { tokens } = (await hubClient(o, io)('GET', '/api/v1/operator-tokens')) as { tokens: OperatorTokenView[] };
        if (o.json) return json(tokens);
        io.out(table(['ID', 'NAME', 'ROLE', 'CREATED', 'STATE'], tokens.map((t) => [t.id, t.name, t.role, t.createdAt, state(t)])));
      })),
  );
  token.addCommand(
    hubSubcommand('revoke')
      .description('revoke an operator token: it stops working at once')
      .argument('<id>')
      .action((id, o) => run(async () => {
        const t = (await hubClient(o, io)('DELETE', `/api/v1/operator-tokens/${encodeURIComponent(id)}`)) as OperatorTokenView;
        if (o.json) return json(t);
        io.out(`revoked ${t.role} token ${t.id} ("${t.name}")\n`);
      })),
  );
  token.addCommand(
    hubSubcommand('bootstrap')
      .description('issue a bootstrap token agents register with')
      .option('--ttl-seconds <s>', 'lifetime (default one day)', wholeNumber(60))
      .option('--max-uses <n>', 'new registrations it may start (default 1)', wholeNumber(1))
      .option('--description <text>', 'what it is for')
      .action((o) => run(async () => {
        const body = { ...(o.ttlSeconds !== undefined ? { ttlSeconds: o.ttlSeconds } : {}), ...(o.maxUses !== undefined ? { maxUses: o.maxUses } : {}), ...(o.description !== undefined ? { description: o.description } : {}) };
        const t = (await hubClient(o, io)('POST', '/api/v1/bootstrap-tokens', body)) as BootstrapTokenView & { token: string };
        if (o.json) return json(t);
        io.out(`${t.token}\n`);
        io.err(`issued bootstrap token ${t.id}: ${t.maxUses ?? 'unlimited'} use(s), expires ${t.expiresAt ?? 'never'}; shown once\n`);
      })),
  );
  token.addCommand(
    hubSubcommand('bootstrap-list')
      .description('bootstrap tokens, without their text')
      .action((o) => run(async () => {
        const { tokens } = (await hubClient(o, io)('GET', '/api/v1/bootstrap-tokens')) as { tokens: BootstrapTokenView[] };
        if (o.json) return json(tokens);
        io.out(table(['ID', 'SOURCE', 'USES', 'EXPIRES', 'STATE', 'DESCRIPTION'], tokens.map((t) => [t.id, t.source, `${t.uses}/${t.maxUses ?? '∞'}`, t.expiresAt ?? 'never', state(t), t.description ?? ''])));
      })),
  );
  token.addCommand(
    hubSubcommand('bootstrap-revoke')
      .description('revoke a bootstrap token: registrations with it are refused from now on')
      .argument('<id>')
      .action((id, o) => run(async () => {
        const t = (await hubClient(o, io)('DELETE', `/api/v1/bootstrap-tokens/${encodeURIComponent(id)}`)) as BootstrapTokenView;
        if (o.json) return json(t);
        io.out(`revoked bootstrap token ${t.id}\n`);
      })),
  );
  return token;
}

/** `fleetlet token …` with its own io, for tests and embeddings. */
export async function runToken(argv: string[], io: HubClientIo): Promise<number> {
  let code: number = ExitCode.Ok;
  const cmd = tokenCommand({ io, exit: (c) => (code = c) }, io);
  configureTree(cmd, io);
  return runCommand(cmd, argv, io, () => code);
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  return [header, ...rows].map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ')).join('\n') + '\n';
}
