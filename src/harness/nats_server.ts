/**
 * A private `nats-server -js` for a test or benchmark: free port, temporary store, removed
 * afterwards.
 * `await using server = await startTestNatsServer();`
 *
 * @module
 */
import {
  type NatsServerHandle,
  startNatsServer,
  type StartNatsServerOptions,
} from "../pipeline/nats_server.ts";

/** A test server; disposing it stops the server and deletes its store. */
export interface TestNatsServer extends NatsServerHandle, AsyncDisposable {}

/**
 * Starts a server on a free port with a temporary JetStream store; `options` can add a
 * configuration file (accounts, users, TLS) and its environment.
 */
export async function startTestNatsServer(
  options: Pick<StartNatsServerOptions, "configFile" | "env"> = {},
): Promise<TestNatsServer> {
  const storeDir = await Deno.makeTempDir({ prefix: "nats-test-" });
  let server: NatsServerHandle;
  try {
    server = await startNatsServer({ storeDir, ...options });
  } catch (error) {
    await Deno.remove(storeDir, { recursive: true });
    throw error;
  }
  const dispose = async () => {
    await server.stop();
    await Deno.remove(storeDir, { recursive: true }).catch(() => undefined);
  };
  return { ...server, stop: dispose, [Symbol.asyncDispose]: dispose };
}
