/**
 * Worker for tests/thread_priority.test.ts: sets its own thread's nice value to the number it
 * is sent and answers with what the thread reads back afterwards.
 */
import { setThreadNiceness, threadNiceness } from "../../src/util/thread_priority.ts";

const scope = self as unknown as Worker;
scope.onmessage = (event: MessageEvent<number>) => {
  const change = setThreadNiceness(event.data);
  scope.postMessage({ change, after: threadNiceness() });
};
