// What a Kubernetes Service does for the hub's replicas, on 127.0.0.1: each
// new connection goes to the next backend in turn; a backend that refuses
// (its process died) is skipped. Records which backend got each connection.
import { createConnection, createServer, type AddressInfo, type Socket } from 'node:net';

export interface ServiceBalancer {
  port: number;
  url(path: string): string;
  /** Backend port of every connection relayed so far, in order. */
  readonly picks: number[];
  close(): Promise<void>;
}

export async function startServiceBalancer(backends: readonly number[]): Promise<ServiceBalancer> {
  let next = 0;
  const picks: number[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => client.destroy());
    client.pause();
    const attempt = (tries: number): void => {
      if (tries >= backends.length) return void client.destroy();
      const port = backends[next++ % backends.length] as number;
      const upstream = createConnection({ host: '127.0.0.1', port });
      upstream.once('error', () => {
        upstream.destroy();
        if (!client.destroyed) attempt(tries + 1);
      });
      upstream.once('connect', () => {
        picks.push(port);
        sockets.add(upstream);
        upstream.on('close', () => {
          sockets.delete(upstream);
          client.destroy();
        });
        upstream.on('error', () => upstream.destroy());
        client.on('close', () => upstream.destroy());
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
    };
    attempt(0);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: (path) => `ws://127.0.0.1:${port}${path}`,
    picks,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
