// The wire protocol between an agent and a hub: one WebSocket per agent,
// one JSON message per frame.
//
// Versioning. Every message carries `protocolVersion`, the sender's
// PROTOCOL_VERSION. A receiver accepts any version from
// MIN_PEER_PROTOCOL_VERSION to MAX_PEER_PROTOCOL_VERSION (its own ±1), so an
// agent and a hub one version apart keep talking during a rolling upgrade of
// either side. That works because of three rules for changing this file:
//   1. Objects are parsed non-strictly: fields a receiver does not know are
//      dropped, so version N+1 may add optional fields freely.
//   2. Version N+1 keeps every field version N requires, with the same
//      meaning; removing or redefining one takes two version bumps.
//   3. A new message type is optional to understand: an older receiver
//      answers `error {code: UnknownType}` and carries on, so a sender must
//      not depend on a new type being understood by a peer one version back.
import { z } from 'zod';
import { agentProof, agentPublicKey, challengeNonce } from './agent-identity.ts';
import { inventory } from './inventory.ts';
import { labels } from './names.ts';

export const PROTOCOL_VERSION = 1;
export const MIN_PEER_PROTOCOL_VERSION = Math.max(1, PROTOCOL_VERSION - 1);
export const MAX_PEER_PROTOCOL_VERSION = PROTOCOL_VERSION + 1;

/** Largest frame either side accepts (after permessage-deflate inflation): a release envelope may be 8 MiB of payload, escaped. */
export const MAX_FRAME_BYTES = 16 * 1024 * 1024;
/** Largest release revision an agent may claim: one a second for 30,000 years, and far from 2^53. */
export const MAX_REVISION = 2 ** 40;
/** Largest number of reports in one `reports` message. */
export const MAX_REPORTS_PER_BATCH = 1000;
/** Deepest nesting of arrays and objects in a frame; refused before JSON.parse, so a hostile frame cannot exhaust a parser's stack. */
export const MAX_JSON_DEPTH = 64;

/** The path on the hub where agents open their WebSocket. */
export const AGENT_PATH = '/api/v1/agent';
/** Header naming the cluster an agent's credential is presented for. */
export const CLUSTER_ID_HEADER = 'x-fleetlet-cluster-id';

/**
 * WebSocket close codes. 4000-4999 are the application's; an agent stops
 * reconnecting on the ones that say retrying cannot help (see hub-link).
 */
export const closeCodes = {
  superseded: 4000,
  unauthenticated: 4001,
  unsupportedVersion: 1002,
  /** An abuse budget ran out (bad frames, frame rate, oversize, nesting): RFC 6455 policy violation. */
  policyViolation: 1008,
  clusterMismatch: 4003,
  deregistered: 4004,
  /** The operator revoked the cluster's key: the agent stops and waits for a new bootstrap. */
  revoked: 4005,
  /** Another key registered under this id, or the key changed: an operator decides. */
  keyConflict: 4009,
  alreadyRegistered: 4009,
  /** Too many failed attempts from this address: back off. */
  throttled: 4029,
  internal: 1011,
  /** RFC 6455 "Try Again Later": this hub replica cannot reach its database; reconnect (the Service sends the agent to another). */
  unavailable: 1013,
} as const;

/** A DNS subdomain (RFC 1123), as a Kubernetes cluster UID or name fits it. */
export const clusterId = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a lowercase DNS subdomain (a-z, 0-9, "-", ".")');

const version = z.number().int();
const seq = z.number().int().positive();
const datetime = z.iso.datetime();

// ---- agent → hub ----

export const helloMessage = z.object({
  type: z.literal('hello'),
  protocolVersion: version,
  clusterId,
  agentVersion: z.string().min(1).max(128),
  inventory,
  /**
   * Revision of the newest release the agent accepted; 0 when none. Bounded
   * because the hub counts its next revision past it: a claim near 2^53
   * would leave the hub no integer to sign with.
   */
  lastRevision: z.number().int().nonnegative().max(MAX_REVISION),
  outbox: z.object({ firstSeq: seq.nullable(), lastSeq: z.number().int().nonnegative() }),
  /**
   * The agent's signature over the hub's `challenge` (signChallenge, purpose
   * hello): proof that it holds the key the cluster registered with. Optional
   * in the schema only for agents that still authenticate with a bearer
   * credential from before keys (docs/security.md, migration).
   */
  proof: agentProof.optional(),
  /** With a bearer credential and no key on the hub yet: the key to bind to the cluster (migration). */
  publicKey: agentPublicKey.optional(),
});

export const reportEntry = z.object({
  seq,
  kind: z.string().min(1).max(64),
  body: z.unknown(),
  /** Not checked as a datetime: one odd timestamp must not block the outbox behind it. */
  createdAt: z.string().max(64),
});
export type ReportEntry = z.infer<typeof reportEntry>;

export const reportsMessage = z
  .object({
    type: z.literal('reports'),
    protocolVersion: version,
    /**
     * The seq of the report that precedes the first one in this batch in the
     * agent's outbox (the hub's acknowledged seq for the first batch after a
     * welcome). The hub chains reports through it, so it acknowledges only
     * what it holds without a hole, whatever numbers the journal skipped.
     */
    afterSeq: z.number().int().nonnegative(),
    reports: z.array(reportEntry).min(1).max(MAX_REPORTS_PER_BATCH),
  })
  .superRefine((m, ctx) => {
    let prev = m.afterSeq;
    m.reports.forEach((r, i) => {
      if (r.seq <= prev) ctx.addIssue({ code: 'custom', path: ['reports', i, 'seq'], message: `must be greater than ${prev} (reports ascend after afterSeq)` });
      prev = r.seq;
    });
  });

/**
 * When the agent's own policy next lets an upgrade start (its maintenance
 * windows minus blackouts, evaluated on the agent's clock). Only the
 * edges are sent, so the value changes when the window opens or closes,
 * not with every heartbeat.
 */
export const maintenanceWindow = z.object({
  /** An attempt may start now. */
  open: z.boolean(),
  /** Closed: when allowed time next begins; null when none within the agent's horizon (400 days). */
  opensAt: datetime.nullable(),
  /** Open: when allowed time ends; null when it does not end within the horizon. */
  closesAt: datetime.nullable(),
});
export type MaintenanceWindow = z.infer<typeof maintenanceWindow>;

export const heartbeatMessage = z.object({
  type: z.literal('heartbeat'),
  protocolVersion: version,
  sentAt: datetime.optional(),
  /**
   * New in protocol 1 without a version bump (rule 1): sent on the first
   * heartbeat of a connection and whenever it changed since the last one
   * sent; absent otherwise, and always from agents that predate it. The hub
   * keeps the last value it received.
   */
  maintenanceWindow: maintenanceWindow.optional(),
});

export const registerMessage = z.object({
  type: z.literal('register'),
  protocolVersion: version,
  bootstrapToken: z.string().min(1).max(512),
  clusterId,
  agentVersion: z.string().min(1).max(128),
  inventory: inventory.optional(),
  labels: labels.optional(),
  /** The agent's own public key; the hub stores it and nothing else that could authenticate the cluster. */
  publicKey: agentPublicKey.optional(),
  /** signChallenge(purpose register) over the hub's challenge: the registrant holds the key it names. */
  proof: agentProof.optional(),
});

// ---- hub → agent ----

/**
 * The hub's first frame on every connection: a fresh nonce the agent signs
 * in its register or hello. New in protocol 1 (rule 3): an agent that
 * predates it logs UnknownType and can still connect with a bearer credential.
 */
export const challengeMessage = z.object({
  type: z.literal('challenge'),
  protocolVersion: version,
  nonce: challengeNonce,
});

export const welcomeMessage = z.object({
  type: z.literal('welcome'),
  protocolVersion: version,
  /** Every report up to this seq is stored on the hub: the agent drops them and sends what follows. */
  ackedSeq: z.number().int().nonnegative(),
  /** How often the hub expects a heartbeat. */
  heartbeatMs: z.number().int().positive(),
  /** How long after the last heartbeat the hub marks the cluster Unknown. */
  leaseDurationMs: z.number().int().positive(),
});

export const releaseMessage = z.object({
  type: z.literal('release'),
  protocolVersion: version,
  /**
   * A SignedEnvelope, checked by verifyRelease rather than here: a release
   * with a missing or broken signature must reach the verifier, so the agent
   * refuses it by name and reports the refusal instead of dropping a frame.
   */
  envelope: z.unknown(),
});

/**
 * A signed hotfix override (src/protocol/override.ts), delivered like a
 * release: on creation to a connected agent, and again after every hello for
 * each override the cluster should hold (the agent ignores a revision it
 * already holds). New in protocol 1 without a version bump (rule 3): an
 * agent that predates it logs UnknownType and carries on, and the hub never
 * depends on it being understood (the rollout times such a cluster out).
 */
export const overrideMessage = z.object({
  type: z.literal('override'),
  protocolVersion: version,
  /** A SignedEnvelope, checked by verifyOverride rather than here, for the same reason as `release`. */
  envelope: z.unknown(),
});

export const ackMessage = z.object({
  type: z.literal('ack'),
  protocolVersion: version,
  uptoSeq: z.number().int().nonnegative(),
  /**
   * Set when a batch's afterSeq named a report the hub does not hold: the
   * hub stored nothing of it and expects the agent to send again from this
   * seq (its acknowledged mark). An ack protocol that cannot wedge.
   */
  expectedAfterSeq: z.number().int().nonnegative().optional(),
});

export const registrationStatus = z.enum(['pending', 'accepted', 'rejected']);
export type RegistrationStatus = z.infer<typeof registrationStatus>;

/** Why a registration was refused, for the agent to act on (Throttled: wait; KeyConflict: an operator decides). */
export const registrationRefusal = z.enum(['BadBootstrapToken', 'Throttled', 'KeyConflict', 'Revoked', 'ProofRequired', 'BadProof', 'Removed', 'TooManyPending']);
export type RegistrationRefusal = z.infer<typeof registrationRefusal>;

/**
 * The hub's answer to `register`. Accepted carries nothing secret: the
 * agent authenticates from then on by signing each connection's challenge
 * with the key it registered.
 */
export const registrationMessage = z.object({
  type: z.literal('registration'),
  protocolVersion: version,
  status: registrationStatus,
  /** With status rejected: which refusal (a later hub may add codes: treat an unknown one as final). */
  code: z.string().max(64).optional(),
  reason: z.string().max(1024).optional(),
});

export const deregisterMessage = z.object({
  type: z.literal('deregister'),
  protocolVersion: version,
  reason: z.string().max(1024).optional(),
});

export const errorMessage = z.object({
  type: z.literal('error'),
  protocolVersion: version,
  code: z.string().min(1).max(64),
  message: z.string().max(4096),
  /**
   * With Throttled, Banned and BudgetExceeded: how long the hub will refuse
   * this agent (or its address). The agent waits at least that long before
   * reconnecting instead of spending its attempts on refusals.
   */
  retryAfterMs: z.number().int().nonnegative().max(86_400_000).optional(),
});

export const agentMessageSchemas = {
  hello: helloMessage,
  reports: reportsMessage,
  heartbeat: heartbeatMessage,
  register: registerMessage,
} as const;

export const hubMessageSchemas = {
  challenge: challengeMessage,
  welcome: welcomeMessage,
  release: releaseMessage,
  override: overrideMessage,
  ack: ackMessage,
  registration: registrationMessage,
  deregister: deregisterMessage,
  error: errorMessage,
} as const;

const messageSchemas = { ...agentMessageSchemas, ...hubMessageSchemas } as const;

type Schemas = typeof messageSchemas;
export type MessageType = keyof Schemas;
export type Message = { [K in MessageType]: z.infer<Schemas[K]> }[MessageType];
export type AgentMessage = { [K in keyof typeof agentMessageSchemas]: z.infer<Schemas[K]> }[keyof typeof agentMessageSchemas];
export type HubMessage = { [K in keyof typeof hubMessageSchemas]: z.infer<Schemas[K]> }[keyof typeof hubMessageSchemas];
export type MessageOf<K extends MessageType> = z.infer<Schemas[K]>;
export type HelloMessage = MessageOf<'hello'>;
export type ReportsMessage = MessageOf<'reports'>;
export type WelcomeMessage = MessageOf<'welcome'>;

/** A message to send: the sender stamps protocolVersion (see encodeMessage). */
export type Outgoing<M> = M extends unknown ? Omit<M, 'protocolVersion'> : never;

export const protocolErrorReason = z.enum(['FrameTooLarge', 'TooDeep', 'NotJson', 'UnknownType', 'UnsupportedVersion', 'InvalidMessage', 'UnexpectedMessage']);
export type ProtocolErrorReason = z.infer<typeof protocolErrorReason>;

/** What is wrong with a frame; the receiver answers it as an `error` message with code = reason. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  readonly reason: ProtocolErrorReason;
  /** Dotted path of the offending field, when one field is to blame. */
  readonly path: string | undefined;
  constructor(reason: ProtocolErrorReason, message: string, path?: string) {
    super(message);
    this.reason = reason;
    this.path = path;
  }
}

export type ParseResult<M> = { ok: true; message: M } | { ok: false; error: ProtocolError };

export type Direction = 'from-agent' | 'from-hub';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Parses one frame. Never throws: every way a frame can be wrong comes back
 * as a ProtocolError, so a hostile peer cannot crash the receiver.
 * `direction` restricts the accepted types to what that side may send.
 */
export function parseMessage(raw: Buffer | string, direction: 'from-agent'): ParseResult<AgentMessage>;
export function parseMessage(raw: Buffer | string, direction: 'from-hub'): ParseResult<HubMessage>;
export function parseMessage(raw: Buffer | string, direction?: Direction): ParseResult<Message>;
export function parseMessage(raw: Buffer | string, direction?: Direction): ParseResult<Message> {
  const fail = (reason: ProtocolErrorReason, message: string, path?: string): ParseResult<Message> => ({ ok: false, error: new ProtocolError(reason, message, path) });

  const size = typeof raw === 'string' ? Buffer.byteLength(raw, 'utf8') : raw.length;
  if (size > MAX_FRAME_BYTES) return fail('FrameTooLarge', `frame is ${size} bytes; the limit is ${MAX_FRAME_BYTES}`);

  let text: string;
  try {
    text = typeof raw === 'string' ? raw : utf8.decode(raw);
  } catch {
    return fail('NotJson', 'frame is not valid UTF-8 text');
  }
  // A message is one JSON object: a frame that cannot be one by its first and last characters is refused without the
  // depth scan and without JSON.parse, which builds an exception for every bad frame (what a flooder sends most).
  const first = text.charCodeAt(firstNonSpace(text));
  if (first === 123 /* { */) {
    if (text.charCodeAt(lastNonSpace(text)) !== 125 /* } */) return fail('NotJson', 'frame is not JSON: a message is one JSON object, and this frame does not end with "}"');
  } else if (!JSON_VALUE_STARTS.has(first)) {
    return fail('NotJson', 'frame is not JSON: a message is one JSON object, starting with "{"');
  }
  const depth = jsonDepth(text);
  if (depth > MAX_JSON_DEPTH) return fail('TooDeep', `frame nests arrays/objects ${depth} deep; the limit is ${MAX_JSON_DEPTH}`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    // Only the position: the engine's message quotes the text around it, and a frame may hold a secret (a bootstrap token).
    const at = /position (\d+)/.exec((err as Error).message)?.[1];
    return fail('NotJson', `frame is not JSON${at === undefined ? '' : ` (syntax error at position ${at})`}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return fail('InvalidMessage', 'a message must be a JSON object', '');

  const { type, protocolVersion } = json as { type?: unknown; protocolVersion?: unknown };
  if (typeof type !== 'string') return fail('InvalidMessage', 'missing "type" (a string naming the message)', 'type');
  if (typeof protocolVersion !== 'number' || !Number.isInteger(protocolVersion)) {
    return fail('InvalidMessage', 'missing "protocolVersion" (an integer)', 'protocolVersion');
  }
  if (protocolVersion < MIN_PEER_PROTOCOL_VERSION || protocolVersion > MAX_PEER_PROTOCOL_VERSION) {
    return fail(
      'UnsupportedVersion',
      `protocol version ${protocolVersion} is not supported; this side speaks ${PROTOCOL_VERSION} and accepts ${MIN_PEER_PROTOCOL_VERSION}..${MAX_PEER_PROTOCOL_VERSION}: upgrade the older side`,
      'protocolVersion',
    );
  }
  if (!Object.hasOwn(messageSchemas, type)) return fail('UnknownType', `unknown message type "${type.slice(0, 64)}"`, 'type');
  const allowed = direction === 'from-agent' ? agentMessageSchemas : direction === 'from-hub' ? hubMessageSchemas : messageSchemas;
  if (!Object.hasOwn(allowed, type)) {
    return fail('UnexpectedMessage', `"${type}" is not a message the ${direction === 'from-agent' ? 'agent' : 'hub'} sends`, 'type');
  }

  const schema = messageSchemas[type as MessageType];
  const result = schema.safeParse(json);
  if (!result.success) {
    const issues = result.error.issues;
    const first = issues[0];
    const path = first ? first.path.join('.') : '';
    const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : '';
    return fail('InvalidMessage', `${type}: ${path || '(root)'}: ${first?.message ?? 'invalid'}${more}`, path);
  }
  return { ok: true, message: result.data as Message };
}

/** Characters a JSON value other than an object may start with (such a frame is JSON, but not a message: InvalidMessage). */
const JSON_VALUE_STARTS = new Set([...'["-0123456789tfn'].map((c) => c.charCodeAt(0)));

const isJsonSpace = (c: number): boolean => c === 32 || c === 9 || c === 10 || c === 13;

function firstNonSpace(text: string): number {
  let i = 0;
  while (i < text.length && isJsonSpace(text.charCodeAt(i))) i++;
  return i;
}

function lastNonSpace(text: string): number {
  let i = text.length - 1;
  while (i >= 0 && isJsonSpace(text.charCodeAt(i))) i--;
  return i;
}

/**
 * How deeply arrays and objects nest in a JSON text (brackets outside
 * strings). Stops counting past the limit, so the scan is cheap to fail.
 */
export function jsonDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92 /* \\ */) i++;
      else if (c === 34 /* " */) inString = false;
    } else if (c === 34) {
      inString = true;
    } else if (c === 123 /* { */ || c === 91 /* [ */) {
      if (++depth > max) {
        max = depth;
        if (max > MAX_JSON_DEPTH) return max;
      }
    } else if (c === 125 /* } */ || c === 93 /* ] */) {
      depth--;
    }
  }
  return max;
}

/**
 * Most bytes one report may take as JSON: what fits a frame beside the
 * batch's envelope. A bigger one cannot reach the hub however often it is sent.
 */
export const MAX_REPORT_BYTES = MAX_FRAME_BYTES - 64 * 1024;
/** Levels a `reports` frame wraps around each report: the message object and its array. */
const LEVELS_AROUND_REPORT = 2;

/**
 * Why the hub cannot take this report whatever it is sent with (the limits
 * it enforces on every frame), or undefined. The agent checks each report
 * before sending, so one such report is quarantined once instead of being
 * refused, and re-sent, forever. `json` is the report's JSON text, for its size.
 */
export function reportProblem(entry: ReportEntry, json: string): { reason: 'TooDeep' | 'FrameTooLarge' | 'InvalidReport'; message: string; bytes: number } | undefined {
  const bytes = Buffer.byteLength(json);
  if (bytes > MAX_REPORT_BYTES) return { reason: 'FrameTooLarge', message: `the report takes ${bytes} bytes as JSON; a frame holds at most ${MAX_REPORT_BYTES}`, bytes };
  const depth = jsonDepth(json) + LEVELS_AROUND_REPORT;
  if (depth > MAX_JSON_DEPTH) return { reason: 'TooDeep', message: `the report nests ${depth} deep in its frame; the hub refuses frames deeper than ${MAX_JSON_DEPTH}`, bytes };
  const valid = reportEntry.safeParse(entry);
  if (!valid.success) {
    const issue = valid.error.issues[0];
    return { reason: 'InvalidReport', message: `${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`, bytes };
  }
  return undefined;
}

/** Serialises a message, stamped with this side's protocol version. */
export function encodeMessage(message: Outgoing<Message>): string {
  return JSON.stringify({ ...message, protocolVersion: PROTOCOL_VERSION });
}

/** An `error` reply for a ProtocolError. */
export function errorReply(error: ProtocolError): Outgoing<MessageOf<'error'>> {
  return { type: 'error', code: error.reason, message: error.message };
}
