// An agent's hub link wired to in-memory parts, for tests of the hub: what
// the hub sends is verified with the protocol's own verifier, and a refusal
// is reported through the outbox, as the real agent (src/agent/agent.ts)
// does with its journal; nothing is installed.
import type { KeyObject } from 'node:crypto';
import { HubLink, type HubLinkOptions } from '../../src/hub-link/hub-link.ts';
import { generateAgentKey, type AgentKeyPair } from '../../src/protocol/agent-identity.ts';
import type { Inventory } from '../../src/protocol/inventory.ts';
import type { Release } from '../../src/protocol/release.ts';
import { ReleaseRefused, verifyRelease } from '../../src/protocol/signing.ts';
import { BOOTSTRAP_TOKEN, testLogger, type HubFixture } from './hub-fixture.ts';
import type { Outbox } from '../../src/store/outbox.ts';
import { MemoryOutbox } from './memory-outbox.ts';
import { nextEvent, waitFor } from './events.ts';

export interface TestAgent {
  link: HubLink;
  outbox: Outbox;
  releases: Release[];
  refusals: ReleaseRefused[];
  deregistrations: string[];
  revocations: string[];
  state: { key: AgentKeyPair; registered: boolean; legacyCredential: string | undefined; lastRevision: number; inventory: Inventory };
}

export interface TestAgentOptions {
  url: string;
  clusterId: string;
  releaseKey: KeyObject;
  now: () => Date;
  /** Default: a new key pair (a first start). */
  key?: AgentKeyPair;
  /** The agent believes an operator accepted it (as persisted in its Secret). */
  registered?: boolean;
  /** A bearer credential from a hub before keys. */
  legacyCredential?: string;
  bootstrapToken?: string;
  /** The in-memory outbox unless given (the agent's journal, for tests of what the journal does). */
  outbox?: Outbox;
  inventory?: Inventory;
  lastRevision?: number;
  link?: Partial<HubLinkOptions>;
}

export function createTestAgent(o: TestAgentOptions): TestAgent {
  const state = {
    key: o.key ?? generateAgentKey(),
    registered: o.registered ?? false,
    legacyCredential: o.legacyCredential,
    lastRevision: o.lastRevision ?? 0,
    inventory: o.inventory ?? { components: [{ name: 'metrics', version: '0.9.0' }], kubernetesVersion: 'v1.35.4', targetInfrastructure: 'aws', overrides: [] },
  };
  const outbox = o.outbox ?? new MemoryOutbox(o.now);
  const agent: TestAgent = { link: undefined as unknown as HubLink, outbox, releases: [], refusals: [], deregistrations: [], revocations: [], state };
  agent.link = new HubLink({
    url: o.url,
    clusterId: o.clusterId,
    agentVersion: '0.1.0-test',
    agentKey: state.key,
    registered: () => state.registered,
    onRegistered: async () => {
      state.registered = true;
    },
    legacyCredential: () => state.legacyCredential,
    onKeyBound: async () => {
      state.legacyCredential = undefined;
    },
    bootstrapToken: () => o.bootstrapToken ?? BOOTSTRAP_TOKEN,
    outbox,
    lastRevision: () => state.lastRevision,
    inventory: async () => state.inventory,
    onRelease: async (envelope) => {
      try {
        const r = verifyRelease(envelope, o.releaseKey, { now: o.now, lastRevision: state.lastRevision });
        state.lastRevision = r.revision;
        agent.releases.push(r);
      } catch (err) {
        if (!(err instanceof ReleaseRefused)) throw err;
        agent.refusals.push(err);
        outbox.enqueue('release-refused', { reason: err.reason, message: err.message, at: o.now().toISOString(), ...(err.revision === undefined ? {} : { revision: err.revision }) });
        agent.link.flush();
      }
    },
    onDeregister: async (reason) => {
      agent.deregistrations.push(reason);
      state.registered = false;
    },
    onRevoked: async (reason) => {
      agent.revocations.push(reason);
    },
    now: o.now,
    random: () => 0.5,
    logger: testLogger(),
    heartbeatMs: 200,
    backoff: { baseMs: 20, capMs: 200 },
    window: 20,
    batchSize: 5,
    ...o.link,
  });
  return agent;
}

/** Registers a cluster through the double opt-in and returns its agent, connected and welcomed. */
export async function enrolAgent(f: HubFixture, clusterId: string, o: Partial<TestAgentOptions> = {}): Promise<TestAgent> {
  const agent = createTestAgent({ url: f.hub.url, clusterId, releaseKey: f.key.publicKey, now: f.clock.now, ...o });
  const pending = nextEvent(agent.link, 'registration', (r: { status: string }) => r.status === 'pending');
  agent.link.start();
  await pending;
  const welcomed = nextEvent(agent.link, 'welcome');
  const accepted = await f.api('POST', `/api/v1/clusters/${clusterId}/accept`);
  if (accepted.status !== 200) throw new Error(`accept failed: ${JSON.stringify(accepted.body)}`);
  await welcomed;
  return agent;
}

/** Resolves once every row the outbox holds now and later is acknowledged. */
export function drained(agent: TestAgent, what = 'the outbox to drain'): Promise<void> {
  return waitFor(agent.link, ['acked', 'welcome'], () => agent.outbox.stats().depth === 0, what);
}
