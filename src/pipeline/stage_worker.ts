/**
 * Entry point of a stage Worker: receives its setup, connects its own NATS client, runs the
 * stage and answers the host's calls (see `stage_host.ts` for the protocol).
 *
 * @module
 */
import type { NatsConnection } from "nats";
import type { PipelineStage } from "../stages/stage.ts";
import { createStage } from "./stage_factory.ts";
import { callStage, connectStage, type FromWorker, type ToWorker } from "./stage_host.ts";

const scope = self as unknown as {
  onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
  postMessage(message: FromWorker): void;
  close(): void;
};

let stage: PipelineStage | undefined;
let connection: NatsConnection | undefined;

function text(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function init(message: Extract<ToWorker, { type: "init" }>): Promise<void> {
  try {
    connection = await connectStage(message.setup, message.natsUrl, message.natsAuth);
    stage = await createStage(message.setup, connection);
    await stage.start();
    connection.closed().then((error) => {
      if (error) scope.postMessage({ type: "failed", error: `NATS: ${text(error)}` });
    });
    scope.postMessage({ type: "ready" });
  } catch (error) {
    await connection?.close().catch(() => undefined);
    scope.postMessage({ type: "failed", error: text(error) });
  }
}

async function call(message: Extract<ToWorker, { type: "call" }>): Promise<void> {
  try {
    if (!stage || !connection) throw new Error("stage is not started");
    const value = await callStage(stage, message.method);
    if (message.method === "stop") await connection.drain();
    scope.postMessage({ type: "result", id: message.id, ok: true, value: value ?? null });
  } catch (error) {
    scope.postMessage({ type: "result", id: message.id, ok: false, error: text(error) });
  }
}

scope.onmessage = (event) => {
  const message = event.data;
  if (message.type === "init") void init(message);
  else void call(message);
};
