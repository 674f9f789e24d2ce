// A bare WebSocket client for speaking the protocol by hand: what a buggy or
// hostile agent would send. The hub's first frame (the challenge) is kept
// apart from `messages`; prove() signs it as an agent holding `key` would.
// A hub that sends no challenge within a moment (one from before keys)
// still gets a connection, with an empty nonce, so attacks can be replayed
// against it.
import WebSocket from 'ws';
import { signChallenge, type AgentKeyPair } from '../../src/protocol/agent-identity.ts';
import { CLUSTER_ID_HEADER, parseMessage, type HubMessage } from '../../src/protocol/messages.ts';

export interface RawConnection {
  ok: true;
  ws: WebSocket;
  /** Every hub frame after the challenge. */
  messages: HubMessage[];
  /** The next hub frame not yet read. */
  next(): Promise<HubMessage>;
  closed: Promise<{ code: number; reason: string }>;
  /** The challenge's nonce. */
  nonce: string;
  /** A proof over this connection's challenge with the `key` option (or the one given), for the clusterId option (or the one given). */
  prove(purpose: 'register' | 'hello', clusterId?: string, key?: AgentKeyPair): string;
}

export type RawConnect = RawConnection | { ok: false; status: number; body: string; headers: Record<string, string | string[] | undefined> };

/** `localAddress`: the source address (any 127.x.y.z is the loopback on Linux), so a test can play two hosts. */
export function connectRaw(url: string, opts: { credential?: string; clusterId?: string; key?: AgentKeyPair; localAddress?: string } = {}): Promise<RawConnect> {
  const headers: Record<string, string> = {};
  if (opts.credential !== undefined) headers.authorization = `Bearer ${opts.credential}`;
  if (opts.clusterId !== undefined) headers[CLUSTER_ID_HEADER] = opts.clusterId;
  const ws = new WebSocket(url, { headers, perMessageDeflate: true, ...(opts.localAddress !== undefined ? { localAddress: opts.localAddress } : {}) });
  return new Promise((resolve, reject) => {
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        resolve({ ok: false, status: res.statusCode ?? 0, body, headers: res.headers });
        ws.terminate();
      });
    });
    ws.on('error', (err) => reject(err));
    const messages: HubMessage[] = [];
    const waiters: ((m: HubMessage) => void)[] = [];
    let read = 0;
    let opened: RawConnection | undefined;
    const closed = new Promise<{ code: number; reason: string }>((res) => ws.on('close', (code, reason) => res({ code, reason: reason.toString() })));
    const open = (nonce: string): void => {
      if (opened !== undefined) return;
      opened = {
        ok: true,
        ws,
        messages,
        closed,
        nonce,
        prove: (purpose, clusterId = opts.clusterId ?? '', key = opts.key) => {
          if (!key) throw new Error('prove() needs a key');
          return signChallenge(key.privateKey, purpose, nonce, clusterId);
        },
        next: () => (read < messages.length ? Promise.resolve(messages[read++] as HubMessage) : new Promise((res) => waiters.push((msg) => (read++, res(msg))))),
      };
      resolve(opened);
    };
    ws.on('open', () => {
      ws.removeAllListeners('error');
      ws.on('error', () => undefined);
      setTimeout(() => open(''), 500).unref();
    });
    ws.on('message', (data: Buffer) => {
      const m = parseMessage(data, 'from-hub');
      if (!m.ok) throw m.error;
      if (m.message.type === 'challenge' && opened === undefined) {
        open(m.message.nonce);
        return;
      }
      messages.push(m.message);
      waiters.shift()?.(m.message);
    });
  });
}
