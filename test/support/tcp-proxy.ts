// A TCP relay between an agent and a hub that a test can cut (both ends see
// a reset, as when a hub or a NAT drops the connection) or black-hole (bytes
// vanish, nobody is told: a half-open connection).
import { createConnection, createServer, type AddressInfo, type Socket } from 'node:net';

export interface TcpProxy {
  port: number;
  url(path: string): string;
  /** Connections currently relayed. */
  readonly connections: number;
  cut(): void;
  blackhole(on: boolean): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const pairs = new Set<[Socket, Socket]>();
  let holed = false;
  const server = createServer((client) => {
    const upstream = createConnection({ host: '127.0.0.1', port: targetPort });
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const relay = (from: Socket, to: Socket): void => {
      from.on('data', (chunk) => {
        if (!holed && !to.destroyed) to.write(chunk);
      });
    };
    relay(client, upstream);
    relay(upstream, client);
    const drop = (): void => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const s of pair) {
      s.on('error', drop);
      s.on('close', drop);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const cut = (): void => {
    for (const [a, b] of pairs) {
      a.resetAndDestroy();
      b.resetAndDestroy();
    }
    pairs.clear();
  };
  return {
    port,
    url: (path) => `ws://127.0.0.1:${port}${path}`,
    get connections() {
      return pairs.size;
    },
    cut,
    blackhole(on) {
      holed = on;
    },
    close() {
      cut();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
