// A bare WebSocket client for speaking the protocol by hand: what a buggy or
// hostile agent would send.
import WebSocket from 'ws';
import { CLUSTER_ID_HEADER, parseMessage, type HubMessage } from '../../src/protocol/messages.ts';

export type RawConnect = { ok: true; ws: WebSocket; messages: HubMessage[]; next(): Promise<HubMessage>; closed: Promise<{ code: number; reason: string }> } | { ok: false; status: number; body: string };

export function connectRaw(url: string, opts: { credential?: string; clusterId?: string } = {}): Promise<RawConnect> {
  const headers: Record<string, string> = {};
  if (opts.credential !== undefined) headers.authorization = `Bearer ${opts.credential}`;
  if (opts.clusterId !== undefined) headers[CLUSTER_ID_HEADER] = opts.clusterId;
  const ws = new WebSocket(url, { headers, perMessageDeflate: true });
  return new Promise((resolve, reject) => {
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        resolve({ ok: false, status: res.statusCode ?? 0, body });
        ws.terminate();
      });
    });
    ws.on('error', (err) => reject(err));
    const messages: HubMessage[] = [];
    const waiters: ((m: HubMessage) => void)[] = [];
    let read = 0;
    ws.on('message', (data: Buffer) => {
      const m = parseMessage(data, 'from-hub');
      if (!m.ok) throw m.error;
      messages.push(m.message);
      waiters.shift()?.(m.message);
    });
    const closed = new Promise<{ code: number; reason: string }>((res) => ws.on('close', (code, reason) => res({ code, reason: reason.toString() })));
    ws.on('open', () => {
      ws.removeAllListeners('error');
      ws.on('error', () => undefined);
      resolve({
        ok: true,
        ws,
        messages,
        closed,
        next: () => (read < messages.length ? Promise.resolve(messages[read++] as HubMessage) : new Promise((res) => waiters.push((m) => (read++, res(m))))),
      });
    });
  });
}
