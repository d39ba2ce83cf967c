/**
 * Small HTTP helpers shared by the metrics endpoint and the dashboard: binding a `Deno.serve`
 * listener with a clear error, and loopback detection.
 *
 * @module
 */

/** A listening HTTP server. */
export interface HttpEndpoint {
  /** Base URL, e.g. `http://127.0.0.1:9464`. */
  readonly url: string;
  /** Port actually bound (useful with port 0). */
  readonly port: number;
  /** Stops listening and waits for open requests to finish. */
  close(): Promise<void>;
}

/** The port asked for is taken by another process. */
export class PortInUseError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "PortInUseError";
  }
}

/** True for names that only this machine can reach. */
export function isLoopback(hostname: string): boolean {
  return hostname === "localhost" || hostname === "::1" || hostname === "[::1]" ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}

/**
 * Binds `handler` on `hostname:port`.
 *
 * @throws PortInUseError when the port is taken; Error naming the address when it cannot be
 *   bound otherwise.
 */
export function listen(
  what: string,
  hostname: string,
  port: number,
  handler: (request: Request) => Response | Promise<Response>,
): HttpEndpoint {
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({ hostname, port, onListen: () => {} }, handler);
  } catch (error) {
    const prefix = `${what}: cannot listen on ${hostname}:${port}`;
    if (error instanceof Deno.errors.AddrInUse) {
      throw new PortInUseError(
        `${prefix}: port ${port} is in use (choose another port, or 0 for any free one)`,
      );
    }
    throw new Error(`${prefix}: ${(error as Error).message}`);
  }
  const bound = server.addr.port;
  const host = server.addr.hostname.includes(":")
    ? `[${server.addr.hostname}]`
    : server.addr.hostname;
  return {
    url: `http://${host}:${bound}`,
    port: bound,
    close: async () => {
      await server.shutdown();
    },
  };
}
