/**
 * The control service of a pipeline process: one NATS micro service (`nc.services`) with a
 * group per stage the process runs, under `inspect.<line>.control.<stage>`. Every stage has
 * `status`; the trainer also has `pause`, `resume` and `snapshot`. The service answers
 * `$SRV.PING/INFO/STATS`; its stats carry each stage's status as endpoint data, so
 * `$SRV.STATS.inspect-pipeline` reaches every process even where several share a line.
 *
 * @module
 */
import type { NatsConnection, Service, ServiceMsg } from "nats";
import {
  CONTROL_SERVICE_NAME,
  CONTROL_SERVICE_VERSION,
  controlSubject,
  controlSubjectRoot,
} from "./subjects.ts";

/** A control action: returns a JSON-serialisable answer. */
export type ControlAction = () => Promise<unknown>;

/** The endpoints of one stage. */
export interface StageEndpoints {
  /** Status of the stage (images seen, steps, model version, warm, backlog...). */
  status: ControlAction;
  /** Pause training (trainer only). */
  pause?: ControlAction;
  /** Resume training (trainer only). */
  resume?: ControlAction;
  /** Publish a model version and save a checkpoint now (trainer only). */
  snapshot?: ControlAction;
}

const ACTIONS = ["status", "pause", "resume", "snapshot"] as const;

/** Starts the process's control service for `line` with the given stages' endpoints. */
export async function startControlService(
  nc: NatsConnection,
  line: string,
  stages: Record<string, StageEndpoints>,
): Promise<Service> {
  const statusBySubject = new Map<string, ControlAction>();
  for (const [stage, endpoints] of Object.entries(stages)) {
    statusBySubject.set(controlSubject(line, stage, "status"), endpoints.status);
  }
  const service = await nc.services.add({
    name: CONTROL_SERVICE_NAME,
    version: CONTROL_SERVICE_VERSION,
    description: `inspection pipeline of line ${line}`,
    metadata: { line, stages: Object.keys(stages).join(","), pid: String(Deno.pid) },
    // Stats of a status endpoint carry the stage's status (null elsewhere).
    statsHandler: async (endpoint) => {
      const status = statusBySubject.get(endpoint.subject);
      return status ? await status().catch((error) => ({ error: String(error) })) : null;
    },
  });
  const root = service.addGroup(controlSubjectRoot(line));
  for (const [stage, endpoints] of Object.entries(stages)) {
    const group = root.addGroup(stage);
    for (const action of ACTIONS) {
      const run = endpoints[action];
      if (!run) continue;
      group.addEndpoint(action, {
        handler: (error, msg) => void answer(error, msg, run),
        metadata: { stage, action },
      });
    }
  }
  return service;
}

async function answer(error: Error | null, msg: ServiceMsg, run: ControlAction): Promise<void> {
  if (error) {
    msg.respondError(500, error.message);
    return;
  }
  try {
    msg.respond(new TextEncoder().encode(JSON.stringify(await run())));
  } catch (failure) {
    msg.respondError(500, failure instanceof Error ? failure.message : String(failure));
  }
}
