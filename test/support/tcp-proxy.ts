/**
 * A TCP proxy the test controls, between keyward and a real server (Redis), on a port
 * of its own (port 0, 127.0.0.1). It simulates outages; it never answers in the
 * server's place.
 *
 * States (each switch resolves once it is in force):
 *  - forward(): new connections are forwarded to the target, byte for byte, both ways.
 *    After down() the listener is reopened on the SAME port, so a client reconnecting
 *    to its configured address finds the server again.
 *  - down(): every open connection is destroyed (both sides) and the listener is
 *    closed, so new connections are refused (ECONNREFUSED): a server that went away.
 *  - hang(): a network partition. Open connections stop forwarding in both directions
 *    but stay open; new connections are accepted and never answered (nothing is read
 *    from them, nothing is connected upstream). A hung connection stays hung for good,
 *    after forward() too, as a flow a partition or a stateful firewall dropped: only
 *    the client giving up on it (a timeout) gets it out. close() ends them.
 *
 * `accepted` counts the connections accepted since start, in every state.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export type ProxyState = 'forward' | 'down' | 'hang';

interface Link {
  client: Socket;
  upstream?: Socket;
  hung: boolean;
}

export class TcpProxy {
  state: ProxyState = 'forward';
  accepted = 0;
  private readonly links = new Set<Link>();
  private server: Server | undefined;

  private constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
    public port: number,
  ) {}

  static async start(targetHost: string, targetPort: number): Promise<TcpProxy> {
    const p = new TcpProxy(targetHost, targetPort, 0);
    await p.listen();
    return p;
  }

  /** Forwards new connections again (reopening the same port after down()). */
  async forward(): Promise<void> {
    this.state = 'forward';
    if (!this.server) await this.listen();
  }

  /** Destroys every connection and refuses new ones. */
  async down(): Promise<void> {
    this.state = 'down';
    const server = this.server;
    this.server = undefined;
    for (const l of this.links) this.destroy(l);
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Stops answering: open connections freeze, new ones are accepted and ignored. */
  async hang(): Promise<void> {
    this.state = 'hang';
    for (const l of this.links) this.freeze(l);
    if (!this.server) await this.listen();
  }

  /** Ends every connection and the listener. */
  async close(): Promise<void> {
    await this.down();
  }

  private async listen(): Promise<void> {
    const server = createServer((socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.port = (server.address() as { port: number }).port;
    this.server = server;
  }

  private accept(client: Socket): void {
    this.accepted++;
    const link: Link = { client, hung: false };
    this.links.add(link);
    client.on('error', () => undefined);
    client.on('close', () => this.destroy(link));
    if (this.state !== 'forward') {
      // 'down' has no listener, so only 'hang' gets here.
      this.freeze(link);
      return;
    }
    const upstream = connect(this.targetPort, this.targetHost);
    link.upstream = upstream;
    upstream.on('error', () => undefined);
    upstream.on('close', () => {
      if (!link.hung) this.destroy(link);
    });
    client.pipe(upstream);
    upstream.pipe(client);
  }

  private freeze(l: Link): void {
    l.hung = true;
    l.client.unpipe();
    l.client.pause();
    if (l.upstream) {
      l.upstream.unpipe();
      l.upstream.pause();
    }
  }

  private destroy(l: Link): void {
    this.links.delete(l);
    l.client.destroy();
    l.upstream?.destroy();
  }
}
