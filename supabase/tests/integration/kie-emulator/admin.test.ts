/** The admin surface (issue 7 item 8): tasks, counters, faults, balance, config, reset, bad input. */
import { describe, expect, it } from "vitest";
import { imagen, receiver, startEmulator, waitFor } from "./support.ts";

describe("admin: tasks and counters", () => {
  it("lists tasks with recordInfo data, faults and callback attempts; filters by state", async () => {
    const kie = await startEmulator();
    const held = await kie.createOk(imagen("[kie:hold] a"));
    const done = await kie.createOk(imagen("b"));
    await kie.settled(done);
    const all = (await kie.admin("GET", "tasks")).body.tasks;
    expect(all.map((t: { taskId: string }) => t.taskId).sort()).toEqual([held, done].sort());
    const waiting = (await kie.admin("GET", "tasks?state=waiting")).body.tasks;
    expect(waiting).toEqual([expect.objectContaining({ taskId: held, state: "waiting", faults: { hold: true }, callbacks: [] })]);
    const one = await kie.admin("GET", `tasks/${done}`);
    expect(one.body).toMatchObject({ taskId: done, state: "success", resultUrls: [expect.stringContaining("/files/")] });
    expect((await kie.admin("GET", "tasks/ffff")).status).toBe(404);
    expect((await kie.admin("POST", "tasks/ffff/advance")).status).toBe(404);
  });

  it("counts requests per endpoint, creates, polls, unauthorized, faults and task outcomes", async () => {
    const kie = await startEmulator();
    const id = await kie.createOk(imagen());
    await kie.settled(id);
    await kie.create(imagen(), "bad");
    await kie.create(imagen("[kie:code=455]"));
    await kie.settled(await kie.createOk(imagen("[kie:fail]")));
    await kie.call("GET", "/api/v1/chat/credit");
    const c = await kie.counters();
    expect(c.requests).toMatchObject({ createTask: 4, credit: 1, downloadUrl: 0 });
    expect(c.requests.recordInfo).toBe(c.polls);
    expect(c).toMatchObject({ creates: 2, unauthorized: 1, faultsInjected: 1, tasks: { success: 1, fail: 1 } });
  });
});

describe("admin: faults, balance, config", () => {
  it("adds, lists and removes fault rules", async () => {
    const kie = await startEmulator();
    const a = (await kie.admin("POST", "faults", { spec: "code=455" })).body;
    const b = (await kie.admin("POST", "faults", { endpoint: "recordInfo", spec: "http=403", times: 3 })).body;
    expect((await kie.admin("GET", "faults")).body.rules).toEqual([
      expect.objectContaining({ id: a.id, endpoint: "createTask", spec: "code=455", remaining: null }),
      expect.objectContaining({ id: b.id, endpoint: "recordInfo", spec: "http=403", remaining: 3 }),
    ]);
    expect((await kie.admin("DELETE", `faults/${a.id}`)).body.rules).toHaveLength(1);
    expect((await kie.admin("DELETE", `faults/${a.id}`)).status).toBe(404);
    expect((await kie.admin("DELETE", "faults")).body.rules).toEqual([]);
    expect((await kie.create(imagen())).json.code).toBe(200);
  });

  it.each([
    ["not JSON", "{", "body must be JSON"],
    ["no spec", {}, "spec"],
    ["a bad spec", { spec: "code=abc" }, "code needs a status code"],
    ["an unknown fault", { spec: "explode" }, 'unknown fault "explode"'],
    ["an unknown endpoint", { spec: "code=500", endpoint: "jobs" }, "endpoint"],
    ["times 0", { spec: "code=500", times: 0 }, "times"],
    ["an unknown key", { spec: "code=500", when: "now" }, "when"],
  ])("refuses a fault rule with %s (400) and adds nothing", async (_label, body, message) => {
    const kie = await startEmulator();
    const reply = await kie.admin("POST", "faults", body);
    expect(reply.status).toBe(400);
    expect(reply.body.error).toContain(message);
    expect((await kie.admin("GET", "faults")).body.rules).toEqual([]);
  });

  it("refuses a non-integer rule id to delete", async () => {
    const kie = await startEmulator();
    expect((await kie.admin("DELETE", "faults/abc")).status).toBe(400);
  });

  it("sets the balance, unlimited with null, and refuses bad values without changing it", async () => {
    const kie = await startEmulator({ balance: 5 });
    for (const bad of [{ balance: -1 }, { balance: 1.5 }, { balance: "10" }, {}]) {
      expect((await kie.admin("PUT", "balance", bad)).status).toBe(400);
    }
    expect((await kie.admin("GET", "balance")).body).toEqual({ balance: 5 });
    expect((await kie.admin("PUT", "balance", { balance: null })).body).toEqual({ balance: null });
    expect((await kie.call("GET", "/api/v1/chat/credit")).json.data).toBe(1_000_000);
  });

  it("changes timers and limits at run time and refuses bad config without changing it", async () => {
    const kie = await startEmulator();
    expect((await kie.admin("PATCH", "config", { createRate: "twenty" })).body.error).toContain("bad rate");
    expect((await kie.admin("PATCH", "config", { taskMs: -5 })).status).toBe(400);
    expect((await kie.admin("PATCH", "config", { colour: "red" })).status).toBe(400);
    expect((await kie.admin("GET", "config")).body).toMatchObject({ taskMs: 0, createRate: { limit: 20, windowMs: 10_000 } });
    const patched = await kie.admin("PATCH", "config", { taskMs: 60_000, webhookHmacKey: "k" });
    expect(patched.body).toMatchObject({ taskMs: 60_000, webhookHmacKey: "(set)" });
    const id = await kie.createOk(imagen());
    expect((await kie.record(id)).json.data!.state).toBe("waiting");
  });

  it("answers 404 for unknown admin endpoints", async () => {
    const kie = await startEmulator();
    expect((await kie.admin("GET", "nothing")).status).toBe(404);
    expect((await kie.admin("DELETE", "tasks")).status).toBe(404);
  });
});

describe("admin: reset", () => {
  it("drops tasks, counters, faults, balance and config changes; pending work never fires", async () => {
    const hook = await receiver();
    const kie = await startEmulator({ balance: 50 });
    await kie.createOk({ ...imagen("[kie:slow=200] old"), callBackUrl: `${hook.url}/cb` });
    await kie.admin("POST", "faults", { spec: "code=455", times: 5 });
    await kie.admin("PUT", "balance", { balance: 1 });
    await kie.admin("PATCH", "config", { taskMs: 9999 });
    expect((await kie.admin("POST", "reset")).status).toBe(200);
    expect((await kie.admin("GET", "tasks")).body.tasks).toEqual([]);
    expect((await kie.counters()).requests.createTask).toBe(0);
    expect((await kie.admin("GET", "faults")).body.rules).toEqual([]);
    expect((await kie.admin("GET", "balance")).body.balance).toBe(50);
    expect((await kie.admin("GET", "config")).body.taskMs).toBe(0);
    // The old task would have called back after 200 ms; a newer, slower one arrives alone.
    const fresh = await kie.createOk({ ...imagen("[kie:slow=400] new"), callBackUrl: `${hook.url}/cb` });
    await hook.count(1);
    expect(hook.received.map((r) => r.body.data.taskId)).toEqual([fresh]);
  });

  it("does not strand a client waiting for a delayed reply", async () => {
    const kie = await startEmulator();
    const pending = kie.create(imagen("[kie:delay=200] x"));
    await waitFor(async () => (await kie.counters()).creates === 1);
    await kie.admin("POST", "reset");
    expect((await pending).json.code).toBe(200);
  });
});
