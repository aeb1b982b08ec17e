/** Callbacks (kie-api.md §4): body, HMAC signature, delay, timeout, retries, faults. */
import { createHmac, timingSafeEqual } from "node:crypto";
import { describe, expect, it } from "vitest";
import { imagen, receiver, startEmulator, waitFor } from "./support.ts";

const withCallback = (url: string, prompt = "a red fox") => ({ ...imagen(prompt), callBackUrl: `${url}/kie/callback?job=42&token=s3cret` });

/** An independent check of KIE's documented scheme: base64(HMAC-SHA256(key, taskId + "." + timestamp)). */
function signatureValid(key: string, taskId: string, timestamp: string, signature: string): boolean {
  const expected = createHmac("sha256", key).update(`${taskId}.${timestamp}`, "utf8").digest();
  const given = Buffer.from(signature, "base64");
  return given.length === expected.length && timingSafeEqual(given, expected);
}

describe("callback delivery", () => {
  it("POSTs {code:200, msg, data} with data equal to recordInfo, to the callBackUrl with its query string", async () => {
    const hook = await receiver();
    const kie = await startEmulator();
    const taskId = await kie.createOk(withCallback(hook.url));
    const [received] = await hook.count(1);
    const record = (await kie.record(taskId)).json.data;
    expect(received.path).toBe("/kie/callback?job=42&token=s3cret");
    expect(received.headers["content-type"]).toBe("application/json");
    expect(received.body).toEqual({ code: 200, msg: expect.any(String), data: record });
    expect(received.body.data.state).toBe("success");
  });

  it("reports failures with body code 501 and the task's failCode and failMsg", async () => {
    const hook = await receiver();
    const kie = await startEmulator();
    await kie.createOk(withCallback(hook.url, "[kie:fail=501] a fox"));
    const [received] = await hook.count(1);
    expect(received.body).toMatchObject({ code: 501, data: { state: "fail", failCode: "501", resultJson: "" } });
    expect(received.body.msg).toBe(received.body.data.failMsg);
  });

  it("signs with X-Webhook-Timestamp (seconds) and X-Webhook-Signature when a key is set", async () => {
    const hook = await receiver();
    const kie = await startEmulator({ webhookHmacKey: "whk_test_123" });
    const taskId = await kie.createOk(withCallback(hook.url));
    const [received] = await hook.count(1);
    const timestamp = received.headers["x-webhook-timestamp"] as string;
    const signature = received.headers["x-webhook-signature"] as string;
    expect(timestamp).toMatch(/^\d{10}$/);
    expect(Math.abs(Number(timestamp) - Date.now() / 1000)).toBeLessThan(5);
    expect(received.body.data.taskId).toBe(taskId);
    expect(signatureValid("whk_test_123", taskId, timestamp, signature)).toBe(true);
    expect(signatureValid("another-key", taskId, timestamp, signature)).toBe(false);
    expect(signatureValid("whk_test_123", taskId, String(Number(timestamp) + 1), signature)).toBe(false);
  });

  it("sends no signature headers without a key", async () => {
    const hook = await receiver();
    const kie = await startEmulator();
    await kie.createOk(withCallback(hook.url));
    const [received] = await hook.count(1);
    expect(received.headers["x-webhook-signature"]).toBeUndefined();
    expect(received.headers["x-webhook-timestamp"]).toBeUndefined();
  });

  it("waits --callback-delay-ms after the terminal state", async () => {
    const hook = await receiver();
    const kie = await startEmulator({ callbackDelayMs: 300 });
    await kie.createOk(withCallback(hook.url));
    const [received] = await hook.count(1);
    expect(received.at - received.body.data.completeTime).toBeGreaterThanOrEqual(300);
  });

  it("retries failed deliveries on the schedule, then stops once delivered", async () => {
    const hook = await receiver((n, _req, res) => res.writeHead(n <= 2 ? 500 : 200).end());
    const kie = await startEmulator({ callbackRetryMs: [100, 200, 400] });
    const taskId = await kie.createOk(withCallback(hook.url));
    const received = await hook.count(3);
    expect(received[1].at - received[0].at).toBeGreaterThanOrEqual(100);
    expect(received[2].at - received[1].at).toBeGreaterThanOrEqual(200);
    await waitFor(async () => (await kie.counters()).callbacks.delivered === 1);
    expect((await kie.counters()).callbacks).toEqual({ sent: 3, delivered: 1, failed: 2, abandoned: 0, dropped: 0 });
    const task = (await kie.admin("GET", `tasks/${taskId}`)).body;
    expect(task.callbacks.map((c: { status: number }) => c.status)).toEqual([500, 500, 200]);
  });

  it("gives up after the last retry and counts the delivery as abandoned", async () => {
    const hook = await receiver((_n, _req, res) => res.writeHead(503).end());
    const kie = await startEmulator({ callbackRetryMs: [20, 20] });
    await kie.createOk(withCallback(hook.url));
    await waitFor(async () => (await kie.counters()).callbacks.abandoned === 1);
    expect(hook.received).toHaveLength(3);
    expect((await kie.counters()).callbacks).toMatchObject({ sent: 3, delivered: 0, failed: 3 });
  });

  it("times out a receiver that does not answer", async () => {
    const hook = await receiver(() => {});
    const kie = await startEmulator({ callbackTimeoutMs: 150, callbackRetryMs: [] });
    const taskId = await kie.createOk(withCallback(hook.url));
    await waitFor(async () => (await kie.counters()).callbacks.abandoned === 1);
    const task = (await kie.admin("GET", `tasks/${taskId}`)).body;
    expect(task.callbacks).toEqual([expect.objectContaining({ status: null, error: "timed out after 150 ms" })]);
  });

  it("defaults to KIE's retry schedule: 1, 5 and 15 minutes", async () => {
    const kie = await startEmulator();
    expect((await kie.admin("GET", "config")).body.callbackRetryMs).toEqual([60_000, 300_000, 900_000]);
  });
});

describe("callback faults", () => {
  it("callback=duplicate delivers the same callback twice", async () => {
    const hook = await receiver();
    const kie = await startEmulator();
    await kie.createOk(withCallback(hook.url, "[kie:callback=duplicate] fox"));
    const received = await hook.count(2);
    expect(received[1].body).toEqual(received[0].body);
    expect((await kie.counters()).callbacks.delivered).toBe(2);
  });

  it("callback=duplicate sends the second delivery even when the first was abandoned", async () => {
    const hook = await receiver((n, _req, res) => res.writeHead(n === 1 ? 500 : 200).end());
    const kie = await startEmulator({ callbackRetryMs: [] });
    const taskId = await kie.createOk(withCallback(hook.url, "[kie:callback=duplicate] fox"));
    await hook.count(2);
    await waitFor(async () => (await kie.counters()).callbacks.delivered === 1);
    expect((await kie.counters()).callbacks).toMatchObject({ sent: 2, delivered: 1, abandoned: 1 });
    const task = (await kie.admin("GET", `tasks/${taskId}`)).body;
    expect(task.callbacks.map((c: { delivery: number; status: number }) => [c.delivery, c.status])).toEqual([[1, 500], [2, 200]]);
  });

  it("callback=drop never sends (a later task's callback still arrives)", async () => {
    const hook = await receiver();
    const kie = await startEmulator();
    const dropped = await kie.createOk(withCallback(hook.url, "[kie:callback=drop] fox"));
    await kie.settled(dropped);
    const sent = await kie.createOk(withCallback(hook.url, "owl"));
    await hook.count(1);
    await waitFor(async () => (await kie.counters()).callbacks.delivered === 1);
    expect(hook.received.map((r) => r.body.data.taskId)).toEqual([sent]);
    expect((await kie.counters()).callbacks.dropped).toBe(1);
  });

  it("callback=late:MS arrives MS after completion, after a later task's callback (out of order)", async () => {
    const hook = await receiver();
    const kie = await startEmulator();
    const late = await kie.createOk(withCallback(hook.url, "[kie:callback=late:300] fox"));
    await kie.settled(late);
    const prompt = await kie.createOk(withCallback(hook.url, "owl"));
    const received = await hook.count(2);
    expect(received.map((r) => r.body.data.taskId)).toEqual([prompt, late]);
    expect(received[1].at - received[1].body.data.completeTime).toBeGreaterThanOrEqual(300);
  });

  it("callback=unreachable: delivery is refused, retried, then abandoned; the receiver sees nothing", async () => {
    const hook = await receiver();
    const kie = await startEmulator({ callbackRetryMs: [20] });
    const taskId = await kie.createOk(withCallback(hook.url, "[kie:callback=unreachable] fox"));
    await waitFor(async () => (await kie.counters()).callbacks.abandoned === 1);
    const task = (await kie.admin("GET", `tasks/${taskId}`)).body;
    expect(task.callbacks).toHaveLength(2);
    expect(task.callbacks[0].error).toBe("ECONNREFUSED");
    expect(hook.received).toHaveLength(0);
  });

  it("run-wide: a callback fault set through the admin endpoint applies to new tasks", async () => {
    const hook = await receiver();
    const kie = await startEmulator();
    expect((await kie.admin("POST", "faults", { spec: "callback=duplicate", times: 1 })).status).toBe(201);
    await kie.createOk(withCallback(hook.url, "first"));
    await hook.count(2);
    await kie.createOk(withCallback(hook.url, "second"));
    await hook.count(3);
    await waitFor(async () => (await kie.counters()).callbacks.delivered === 3);
    expect(hook.received.map((r) => JSON.parse(r.body.data.param).input.prompt)).toEqual(["first", "first", "second"]);
  });
});
