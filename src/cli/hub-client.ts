// What the operator commands (`fleetlet rollout`, `fleetlet token`) share:
// the --hub, --token and --json flags, and one call to the hub's HTTP API
// whose failures become one line naming what went wrong.
import { Command } from '@commander-js/extra-typings';
import type { CliIo } from './cli-support.ts';

export class HubClientError extends Error {
  override readonly name = 'HubClientError';
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.reason = reason;
  }
}

export interface HubClientIo extends CliIo {
  fetch: typeof fetch;
}

export interface HubFlags {
  hub?: string;
  token?: string;
  json: boolean;
}

/** A subcommand with --hub, --token and --json, on each so its help shows them. */
export function hubSubcommand(name: string) {
  return new Command(name)
    .option('--hub <url>', 'hub HTTP API (env: FLEETLET_HUB_API; default http://127.0.0.1:8443)')
    .option('--token <token>', 'hub operator token; prefer the environment, the command line shows in ps (env: FLEETLET_ADMIN_TOKEN)')
    .option('--json', 'print the hub\'s JSON answer instead of text', false);
}

export function hubClient(flags: HubFlags, io: HubClientIo) {
  // The environment through io, so a test (or an embedding) decides what it holds.
  const hub = (flags.hub ?? io.env.FLEETLET_HUB_API ?? 'http://127.0.0.1:8443').replace(/\/+$/, '');
  const token = flags.token ?? io.env.FLEETLET_ADMIN_TOKEN;
  return async (method: string, path: string, body?: unknown): Promise<unknown> => {
    if (token === undefined) throw new HubClientError('NoToken', 'give the hub operator token with FLEETLET_ADMIN_TOKEN (or --token)');
    let res: Response;
    try {
      res = await io.fetch(`${hub}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch (err) {
      throw new HubClientError('HubUnreachable', `cannot reach the hub at ${hub}: ${(err as Error).message}`);
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? (JSON.parse(text) as unknown) : undefined;
    } catch {
      throw new HubClientError('NotJson', `${method} ${path}: ${res.status}: the answer is not JSON (is ${hub} a fleetlet hub?)`);
    }
    if (!res.ok) {
      const e = (json as { error?: { reason?: string; message?: string; details?: unknown } } | undefined)?.error;
      const details = e?.details === undefined ? '' : `\n${JSON.stringify(e.details, null, 2)}`;
      throw new HubClientError(e?.reason ?? `Http${res.status}`, `${method} ${path}: ${res.status} ${e?.reason ?? ''}: ${e?.message ?? text}${details}`);
    }
    return json;
  };
}
