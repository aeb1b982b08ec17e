/**
 * Callbacks (§4): on a terminal state, POST `{code: 200 | 501, msg, data}` to the task's
 * callBackUrl, signed when a webhook HMAC key is set, with a delivery timeout and retries.
 */
import { createHmac } from "node:crypto";
import type { EmulatorState, Task } from "./state.ts";
import { describeFetchError } from "./http.ts";
import { recordData } from "./tasks.ts";

/** base64(HMAC-SHA256(key, taskId + "." + timestamp)), timestamp in Unix seconds. */
export function webhookSignature(key: string, taskId: string, timestamp: string): string {
  return createHmac("sha256", key).update(`${taskId}.${timestamp}`).digest("base64");
}

export function callbackBody(task: Task) {
  const success = task.state === "success";
  return {
    code: success ? 200 : 501,
    msg: success ? "Image generated successfully." : task.failMsg,
    data: recordData(task),
  };
}

export function scheduleCallbacks(state: EmulatorState, task: Task): void {
  if (!task.callBackUrl) return;
  const fault = task.faults.callback;
  if (fault?.kind === "drop") {
    state.counters.callbacks.dropped++;
    return;
  }
  let url = task.callBackUrl;
  if (fault?.kind === "unreachable") {
    const target = new URL(task.callBackUrl);
    url = `http://127.0.0.1:${state.closedPort}${target.pathname}${target.search}`;
  }
  const delay = state.config.callbackDelayMs + (fault?.kind === "late" ? fault.ms : 0);
  const deliveries = fault?.kind === "duplicate" ? 2 : 1;
  // The delay counts from completeTime. Node may run a timer a millisecond before Date.now()
  // reaches its due time, so an early wake waits out the rest: late:MS means at least MS.
  const dueAt = (task.completeTime ?? Date.now()) + delay;
  const fire = () => {
    const left = dueAt - Date.now();
    if (left > 0) state.timers.after(left, fire);
    else deliver(state, task, url, 1, 1, deliveries);
  };
  state.timers.after(Math.max(0, dueAt - Date.now()), fire);
}

/** One attempt; on failure the next after the retry schedule, then give up. */
function deliver(state: EmulatorState, task: Task, url: string, delivery: number, attempt: number, deliveries: number) {
  void attemptOnce(state, task, url, delivery, attempt).then((ok) => {
    if (task.epoch !== state.epoch) return;
    const retries = state.config.callbackRetryMs;
    if (!ok && attempt <= retries.length) {
      state.timers.after(retries[attempt - 1], () => deliver(state, task, url, delivery, attempt + 1, deliveries));
      return;
    }
    if (!ok) state.counters.callbacks.abandoned++;
    // A duplicate follows the first delivery, whatever became of it.
    if (delivery < deliveries) deliver(state, task, url, delivery + 1, 1, deliveries);
  });
}

async function attemptOnce(state: EmulatorState, task: Task, url: string, delivery: number, attempt: number) {
  const headers: Record<string, string> = { "Content-Type": "application/json", "User-Agent": "kie-emulator" };
  const key = state.config.webhookHmacKey;
  if (key) {
    const timestamp = String(Math.floor(Date.now() / 1000));
    headers["X-Webhook-Timestamp"] = timestamp;
    headers["X-Webhook-Signature"] = webhookSignature(key, task.taskId, timestamp);
  }
  const record = { delivery, attempt, at: Date.now(), url, status: null as number | null, error: null as string | null };
  task.callbacks.push(record);
  state.counters.callbacks.sent++;
  const timeout = AbortSignal.timeout(state.config.callbackTimeoutMs);
  try {
    const response = await fetch(url, {
      method: "POST",
      headers,
      body: JSON.stringify(callbackBody(task)),
      signal: AbortSignal.any([timeout, state.timers.signal]),
    });
    await response.body?.cancel();
    record.status = response.status;
    if (!response.ok) record.error = `HTTP ${response.status}`;
  } catch (error) {
    record.error = timeout.aborted ? `timed out after ${state.config.callbackTimeoutMs} ms` : describeFetchError(error);
  }
  if (task.epoch !== state.epoch) return false;
  if (record.error) state.counters.callbacks.failed++;
  else state.counters.callbacks.delivered++;
  return record.error === null;
}
