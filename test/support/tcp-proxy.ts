// A TCP relay between an agent and a hub that a test can cut (both ends see
// a reset, as when a hub or a NAT drops the connection) or black-hole (bytes
// vanish, nobody is told: a half-open connection), or that refuses some
// clients by their address (a firewall in front of the hub).
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

export interface TcpProxyOptions {
  /** Where it listens and where the hub is (default 127.0.0.1 both). */
  host?: string;
  targetHost?: string;
  /** Asked for every connection before anything is relayed; false resets it, as a firewall rejecting the client. */
  admit?: (remoteAddress: string) => Promise<boolean>;
}

export async function startTcpProxy(targetPort: number, opts: TcpProxyOptions = {}): Promise<TcpProxy> {
  const pairs = new Set<[Socket, Socket]>();
  let holed = false;
  const host = opts.host ?? '127.0.0.1';
  const relayClient = (client: Socket): void => {
    const upstream = createConnection({ host: opts.targetHost ?? '127.0.0.1', port: targetPort });
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
  };
  const server = createServer((client) => {
    if (!opts.admit) return relayClient(client);
    // Nothing is read until the client is admitted: its bytes wait in the socket.
    client.pause();
    client.on('error', () => client.destroy());
    const address = (client.remoteAddress ?? '').replace(/^::ffff:/, '');
    opts.admit(address).then(
      (ok) => {
        if (client.destroyed) return;
        if (!ok) return void client.resetAndDestroy();
        relayClient(client);
        client.resume();
      },
      () => client.resetAndDestroy(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
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
    url: (path) => `ws://${host}:${port}${path}`,
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
