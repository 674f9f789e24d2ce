// `fleetlet hub`: the reference hub (WebSocket for agents, HTTP API for operators).
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { startHub } from '../hub/start-hub.ts';
import { importPrivateKeyPem } from '../protocol/signing.ts';

export async function hubCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: 'string', default: process.env.FLEETLET_HUB_PORT ?? '8443' },
      host: { type: 'string', default: process.env.FLEETLET_HUB_HOST ?? '127.0.0.1' },
      db: { type: 'string', default: process.env.FLEETLET_HUB_DB ?? './fleetlet-hub.db' },
      'release-key': { type: 'string', default: process.env.FLEETLET_HUB_RELEASE_KEY },
      'admin-token': { type: 'string', default: process.env.FLEETLET_ADMIN_TOKEN },
      'bootstrap-token': { type: 'string', multiple: true },
      'heartbeat-ms': { type: 'string', default: '10000' },
      'tls-key': { type: 'string' },
      'tls-cert': { type: 'string' },
    },
  });
  const logger = pino({ name: 'fleetlet-hub', level: process.env.LOG_LEVEL ?? 'info' });
  if (!values['release-key'] || !values['admin-token']) {
    logger.error('--release-key (Ed25519 private key PEM, see `fleetlet keygen`) and --admin-token (or FLEETLET_ADMIN_TOKEN) are required');
    return 2;
  }
  const bootstrapTokens = values['bootstrap-token'] ?? (process.env.FLEETLET_BOOTSTRAP_TOKENS?.split(',') ?? []);
  const hub = await startHub({
    port: Number(values.port),
    host: values.host,
    dbPath: values.db,
    releaseKey: importPrivateKeyPem(readFileSync(values['release-key'], 'utf8')),
    adminToken: values['admin-token'],
    bootstrapTokens,
    heartbeatMs: Number(values['heartbeat-ms']),
    ...(values['tls-key'] && values['tls-cert'] ? { tls: { key: readFileSync(values['tls-key']), cert: readFileSync(values['tls-cert']) } } : {}),
    now: () => new Date(),
    logger,
  });
  logger.info({ url: hub.url, httpUrl: hub.httpUrl }, 'hub listening');
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  await hub.close();
  return 0;
}
