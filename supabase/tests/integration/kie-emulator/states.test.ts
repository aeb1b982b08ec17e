/** Task states and timing (kie-api.md §3): every state visible through recordInfo. */
import { describe, expect, it } from "vitest";
import { imagen, type RecordData, resultUrls, startEmulator } from "./support.ts";

describe("task states", () => {
  it("a held task shows waiting, queuing, generating, success in turn, each through recordInfo", async () => {
    const kie = await startEmulator();
    const taskId = await kie.createOk(imagen("a lighthouse [kie:hold]"));
    const seen: RecordData[] = [];
    for (let i = 0; i < 4; i++) {
      const { json } = await kie.record(taskId);
      seen.push(json.data!);
      if (i < 3) expect((await kie.admin("POST", `tasks/${taskId}/advance`)).status).toBe(200);
    }
    expect(seen.map((d) => d.state)).toEqual(["waiting", "queuing", "generating", "success"]);
    for (const pending of seen.slice(0, 3)) {
      expect(pending).toMatchObject({ resultJson: "", failCode: "", failMsg: "", completeTime: null, costTime: null, creditsConsumed: null });
    }
    const done = seen[3];
    expect(done.completeTime).toBeGreaterThanOrEqual(done.createTime);
    expect(done.costTime).toBe(done.completeTime! - done.createTime);
    expect(done.updateTime).toBe(done.completeTime);
    expect(done.creditsConsumed).toBe(4);
    expect(resultUrls(done)).toHaveLength(1);
  });

  it("a held task that fails ends in state fail with failCode and failMsg, no result, nothing consumed", async () => {
    const kie = await startEmulator();
    const taskId = await kie.createOk(imagen("[kie:hold,fail=501] a bridge"));
    for (let i = 0; i < 3; i++) await kie.admin("POST", `tasks/${taskId}/advance`);
    const { json } = await kie.record(taskId);
    expect(json.data).toMatchObject({ state: "fail", failCode: "501", failMsg: expect.any(String), resultJson: "", creditsConsumed: 0 });
    expect(json.data!.failMsg).not.toBe("");
    expect(json.data!.completeTime).not.toBeNull();
  });

  it("advancing a terminal task is refused with 409", async () => {
    const kie = await startEmulator();
    const taskId = await kie.createOk(imagen());
    await kie.settled(taskId);
    expect((await kie.admin("POST", `tasks/${taskId}/advance`)).status).toBe(409);
  });

  it("timers move a task from waiting to success in about --task-ms", async () => {
    const kie = await startEmulator({ taskMs: 400 });
    const started = Date.now();
    const taskId = await kie.createOk(imagen());
    // Only lower bounds: a busy machine can make any upper one (even "not finished at the first
    // poll") fail. The held-task test pins each state in between.
    const done = await kie.settled(taskId);
    expect(done.state).toBe("success");
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
    expect(done.costTime).toBeGreaterThanOrEqual(400);
  });

  it("--task-ms 0 finishes at once (benchmarks)", async () => {
    const kie = await startEmulator({ taskMs: 0 });
    const started = Date.now();
    const done = await kie.settled(await kie.createOk(imagen()));
    expect(done.state).toBe("success");
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it("a task's state only moves forward while being polled", async () => {
    const kie = await startEmulator({ taskMs: 300 });
    const taskId = await kie.createOk(imagen());
    const order = ["waiting", "queuing", "generating", "success"];
    let last = 0;
    let state = "";
    while (state !== "success") {
      state = (await kie.record(taskId)).json.data!.state;
      expect(order.indexOf(state)).toBeGreaterThanOrEqual(last);
      last = order.indexOf(state);
    }
  });
});
