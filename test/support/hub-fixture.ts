// A real hub on 127.0.0.1:0 with a temporary database, an adjustable clock
// and a helper for the operator API.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testLogger } from './test-log.ts';
import { generateReleaseKey, type ReleaseKeyPair } from '../../src/protocol/signing.ts';
import { startHub, type HubOptions, type RunningHub } from '../../src/hub/start-hub.ts';

export const ADMIN_TOKEN = 'admin-token-for-tests-only';
/** 43 characters, as a configured token must have (32 random bytes, base64url). */
export const BOOTSTRAP_TOKEN = 'bootstrap-token-for-tests-0123456789abcdefgh';

/** Kept here too: the hub's tests take their logger from their fixture. */
export { testLogger };

/** A clock tests move by hand; it starts at a fixed instant so expiry is deterministic. */
export class TestClock {
  #t: number;
  constructor(start = Date.parse('2030-01-02T00:00:00.000Z')) {
    this.#t = start;
  }
  now = (): Date => new Date(this.#t);
  advance(ms: number): void {
    this.#t += ms;
  }
}

export interface HubFixture {
  hub: RunningHub;
  key: ReleaseKeyPair;
  clock: TestClock;
  dbPath: string;
  /** Restarts the hub on the same port and database; overrides apply to this start only (a compromised hub with another key, a skewed clock). */
  restart(overrides?: Partial<HubOptions>): Promise<void>;
  // Response bodies are JSON the tests assert on field by field.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  api(method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; body: any }>;
  close(): Promise<void>;
}

export async function startHubFixture(overrides: Partial<HubOptions> = {}): Promise<HubFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'fleetlet-hub-'));
  const dbPath = join(dir, 'hub.db');
  const key = generateReleaseKey();
  const clock = new TestClock();
  const options = (port: number, extra: Partial<HubOptions> = {}): HubOptions => ({
    port,
    host: '127.0.0.1',
    dbPath,
    releaseKey: key.privateKey,
    adminToken: ADMIN_TOKEN,
    bootstrapTokens: [BOOTSTRAP_TOKEN],
    heartbeatMs: 10_000,
    now: clock.now,
    logger: testLogger(),
    ...overrides,
    ...extra,
  });
  const fixture: HubFixture = {
    hub: await startHub(options(0)),
    key,
    clock,
    dbPath,
    async restart(extra) {
      const port = fixture.hub.port;
      await fixture.hub.close();
      fixture.hub = await startHub(options(port, extra));
    },
    async api(method, path, body, token = ADMIN_TOKEN) {
      const res = await fetch(`${fixture.hub.httpUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined };
    },
    async close() {
      await fixture.hub.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return fixture;
}

/** A stand-in agent public key for clusters written straight into a store (never verified: such tests inject the session's identity). */
export function storedPublicKey(clusterId: string): string {
  return createHash('sha256').update(clusterId).digest('base64url');
}
