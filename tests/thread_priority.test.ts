import { strict as assert } from "node:assert";
import { setThreadNiceness, threadNiceness } from "../src/util/thread_priority.ts";
import { TrainerStageSchema } from "../src/config/schema.ts";

Deno.test("a Worker lowers its own thread's priority and only its own", async () => {
  const before = threadNiceness();
  assert.ok(before.ok, !before.ok ? before.reason : "");
  const worker = new Worker(new URL("./helpers/niceness_worker.ts", import.meta.url).href, {
    type: "module",
  });
  try {
    const answer = await new Promise<{ change: unknown; after: unknown }>((resolve, reject) => {
      worker.onmessage = (event) => resolve(event.data);
      worker.onerror = (event) => reject(new Error(event.message));
      worker.postMessage(before.niceness + 3);
    });
    assert.deepEqual(answer.change, { ok: true, niceness: before.niceness + 3 });
    assert.deepEqual(answer.after, { ok: true, niceness: before.niceness + 3 });
  } finally {
    worker.terminate();
  }
  // The test's own thread keeps its priority.
  assert.deepEqual(threadNiceness(), before);
});

Deno.test("niceness outside 0–19 is refused before touching the thread", () => {
  for (const bad of [20, -1, 2.5]) {
    assert.throws(() => setThreadNiceness(bad), /integer in \[0, 19\]/);
  }
});

Deno.test("trainer.niceness defaults to 10; out of range, the error names the field", () => {
  assert.equal(TrainerStageSchema.parse({}).niceness, 10);
  const result = TrainerStageSchema.safeParse({ niceness: 25 });
  assert.ok(!result.success);
  assert.deepEqual(result.error.issues[0].path, ["niceness"]);
});
