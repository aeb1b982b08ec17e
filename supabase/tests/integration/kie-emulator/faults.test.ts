/** Fault knobs (issue 7 item 7): the grammar, per-prompt markers, run-wide rules, account errors. */
import { describe, expect, it } from "vitest";
import { FaultSyntaxError, parseFaultSpec, parsePromptFaults, parseRuleText } from "../../../../scripts/dev-stack/kie-emulator/faults.ts";
import { download, imagen, resultUrls, startEmulator, waitFor } from "./support.ts";

describe("fault grammar", () => {
  it("parses every fault", () => {
    expect(parseFaultSpec("code=455, http=522,reset=after,delay=250")).toEqual({ code: 455, http: 522, reset: "after", delay: 250 });
    expect(parseFaultSpec("reset")).toEqual({ reset: "before" });
    expect(parseFaultSpec("fail,moderation,slow=900,hold,ghost=300")).toEqual({ fail: "501", moderation: true, slow: 900, hold: true, ghost: 300 });
    expect(parseFaultSpec("fail=E_GEN")).toEqual({ fail: "E_GEN" });
    expect(parseFaultSpec("callback=late:1500")).toEqual({ callback: { kind: "late", ms: 1500 } });
    for (const kind of ["drop", "duplicate", "unreachable"]) expect(parseFaultSpec(`callback=${kind}`)).toEqual({ callback: { kind } });
    expect(parseFaultSpec("results=3,format=gif")).toEqual({ results: 3, format: "gif" });
  });

  it.each(["", "code=200", "code=abc", "code=1000", "http=99", "http=600", "reset=maybe", "delay=", "delay=-1", "fail=bad code!", "moderation=yes", "callback=sometimes", "callback=late:", "results", "results=0", "results=21", "results=two", "format", "format=bmp", "bogus=1"])(
    "refuses %j with a readable error",
    (spec) => {
      expect(() => parseFaultSpec(spec)).toThrow(FaultSyntaxError);
    },
  );

  it("merges every [kie:...] marker in a prompt, later ones winning", () => {
    expect(parsePromptFaults("a cat [kie:fail=501] on a mat [kie:fail=502,slow=10]")).toEqual({ fail: "502", slow: 10 });
    expect(parsePromptFaults("no markers here, [not:one]")).toEqual({});
  });

  it("reads an optional endpoint prefix on --fault", () => {
    expect(parseRuleText("recordInfo:http=522")).toEqual({ endpoint: "recordInfo", spec: "http=522" });
    expect(parseRuleText("callback=late:50")).toEqual({ endpoint: "createTask", spec: "callback=late:50" });
  });
});

describe("request faults on createTask (prompt markers)", () => {
  it("answers a bad marker with 422 naming the problem, storing nothing", async () => {
    const kie = await startEmulator();
    const reply = await kie.create(imagen("a cat [kie:code=abc]"));
    expect(reply.json).toMatchObject({ code: 422, msg: expect.stringContaining("code needs a status code") });
    expect((await kie.admin("GET", "tasks")).body.tasks).toHaveLength(0);
  });

  it.each([455, 500, 505, 401, 402, 433, 429])("code=%i: HTTP 200, body code %i, nothing stored", async (code) => {
    const kie = await startEmulator();
    const reply = await kie.create(imagen(`a cat [kie:code=${code}]`));
    expect(reply.status).toBe(200);
    expect(reply.json).toMatchObject({ code, msg: expect.any(String), data: null });
    expect((await kie.admin("GET", "tasks")).body.tasks).toHaveLength(0);
    expect((await kie.counters()).faultsInjected).toBe(1);
  });

  it.each([
    [403, "text/plain", /^error code: 1010$/],
    [522, "text/html", /Error 522/],
    [502, "text/html", /502 Bad Gateway/],
  ])("http=%i: that HTTP status with a non-JSON body, nothing stored", async (status, type, body) => {
    const kie = await startEmulator();
    const reply = await kie.create(imagen(`[kie:http=${status}] a cat`));
    expect(reply.status).toBe(status);
    expect(reply.contentType).toContain(type);
    expect(reply.text).toMatch(body);
    expect(reply.json).toBeUndefined();
    expect((await kie.admin("GET", "tasks")).body.tasks).toHaveLength(0);
  });

  it("reset: the connection drops before anything is stored", async () => {
    const kie = await startEmulator();
    await expect(kie.create(imagen("[kie:reset] a cat"))).rejects.toThrow();
    expect((await kie.admin("GET", "tasks")).body.tasks).toHaveLength(0);
  });

  it("reset=after: the connection drops but the task exists and runs (an orphaned task)", async () => {
    const kie = await startEmulator();
    await expect(kie.create(imagen("[kie:reset=after] a cat"))).rejects.toThrow();
    const [task] = (await kie.admin("GET", "tasks")).body.tasks;
    expect((await kie.settled(task.taskId)).state).toBe("success");
  });

  it("delay=MS: the reply comes MS late, past a client's timeout, and the task is created anyway", async () => {
    const kie = await startEmulator();
    const started = Date.now();
    const aborted = fetch(`${kie.url}/api/v1/jobs/createTask`, {
      method: "POST",
      headers: { Authorization: `Bearer ${kie.key}`, "Content-Type": "application/json" },
      body: JSON.stringify(imagen("[kie:delay=400] a cat")),
      signal: AbortSignal.timeout(100),
    });
    await expect(aborted).rejects.toThrow();
    expect((await kie.admin("GET", "tasks")).body.tasks).toHaveLength(1);
    const patient = await kie.create(imagen("[kie:delay=300] a dog"));
    expect(patient.json.code).toBe(200);
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
  });
});

describe("task faults (prompt markers)", () => {
  it("fail=CODE: state fail with that failCode and a failMsg", async () => {
    const kie = await startEmulator();
    const data = await kie.settled(await kie.createOk(imagen("[kie:fail=E42] a cat")));
    expect(data).toMatchObject({ state: "fail", failCode: "E42", resultJson: "", creditsConsumed: 0 });
    expect(data.failMsg.length).toBeGreaterThan(0);
  });

  it("moderation: state fail as a content-moderation rejection", async () => {
    const kie = await startEmulator();
    const data = await kie.settled(await kie.createOk(imagen("[kie:moderation] a cat")));
    expect(data).toMatchObject({ state: "fail", failCode: "400", resultJson: "" });
    expect(data.failMsg).toMatch(/moderation/);
  });

  it("slow=MS: only that task takes MS", async () => {
    const kie = await startEmulator({ taskMs: 0 });
    const slow = await kie.createOk(imagen("[kie:slow=400] a cat"));
    const fast = await kie.createOk(imagen("a dog"));
    expect((await kie.settled(fast)).state).toBe("success");
    expect((await kie.record(slow)).json.data!.state).not.toBe("success");
    expect((await kie.settled(slow)).costTime).toBeGreaterThanOrEqual(400);
  });

  it("results=N: a successful task reports N result URLs, each a PNG", async () => {
    const kie = await startEmulator();
    const data = await kie.settled(await kie.createOk(imagen("[kie:results=3] a cat")));
    expect(data.state).toBe("success");
    const urls = resultUrls(data);
    expect(urls).toHaveLength(3);
    expect(new Set(urls).size).toBe(3);
    for (const url of urls) {
      const file = await download(url);
      expect(file).toMatchObject({ status: 200, type: "image/png" });
      expect(file.bytes.subarray(1, 4).toString("latin1")).toBe("PNG");
    }
    // Without the marker: one URL, as before.
    expect(resultUrls(await kie.settled(await kie.createOk(imagen("a dog"))))).toHaveLength(1);
  });

  it("format=gif: the result is a GIF of the result size, served as image/gif, also through download-url", async () => {
    const kie = await startEmulator({ imageSize: 64 });
    const data = await kie.settled(await kie.createOk(imagen("[kie:format=gif] a cat", { aspect_ratio: "16:9" })));
    expect(data.state).toBe("success");
    const [url] = resultUrls(data);
    expect(url).toMatch(/\/0\.gif$/);
    const file = await download(url);
    expect(file).toMatchObject({ status: 200, type: "image/gif" });
    expect(file.bytes.subarray(0, 6).toString("latin1")).toBe("GIF89a");
    expect([file.bytes.readUInt16LE(6), file.bytes.readUInt16LE(8)]).toEqual([64, 36]);
    expect(file.bytes[file.bytes.length - 1]).toBe(0x3b); // the trailer
    const link = await kie.call("POST", "/api/v1/common/download-url", { url });
    expect(link.json.code).toBe(200);
    const linked = await download(link.json.data as string);
    expect(linked).toMatchObject({ status: 200, type: "image/gif" });
    expect(linked.bytes.equals(file.bytes)).toBe(true);
  });

  it("format=html: the result file is an HTML error page served with 200, every time", async () => {
    const kie = await startEmulator({ imageSize: 64 });
    const data = await kie.settled(await kie.createOk(imagen("[kie:format=html] a cat")));
    expect(data.state).toBe("success");
    const [url] = resultUrls(data);
    expect(url).toMatch(/\/0\.html$/);
    for (let fetched = 0; fetched < 2; fetched++) {
      const file = await download(url);
      expect(file).toMatchObject({ status: 200, type: "text/html" });
      expect(file.bytes.toString("latin1")).toMatch(/^<!DOCTYPE html>/);
    }
  });

  it("ghost=MS: recordInfo says 422 recordInfo is null for MS after creation", async () => {
    const kie = await startEmulator({ taskMs: 60_000 });
    const taskId = await kie.createOk(imagen("[kie:ghost=400] a cat"));
    expect((await kie.record(taskId)).json).toEqual({ code: 422, msg: "recordInfo is null", data: null });
    await waitFor(async () => (await kie.record(taskId)).json.code === 200);
  });
});

describe("run-wide faults", () => {
  it("an admin rule with times applies to that many requests, then retires", async () => {
    const kie = await startEmulator();
    const rule = await kie.admin("POST", "faults", { spec: "code=455", times: 2 });
    expect(rule.status).toBe(201);
    expect(rule.body).toMatchObject({ endpoint: "createTask", remaining: 2 });
    const codes = [];
    for (let i = 0; i < 3; i++) codes.push((await kie.create(imagen())).json.code);
    expect(codes).toEqual([455, 455, 200]);
    expect((await kie.admin("GET", "faults")).body.rules).toEqual([]);
  });

  it("rules target one endpoint: recordInfo 522, credit 500, download-url reset; createTask unaffected", async () => {
    const kie = await startEmulator();
    await kie.admin("POST", "faults", { endpoint: "recordInfo", spec: "http=522" });
    await kie.admin("POST", "faults", { endpoint: "credit", spec: "code=500" });
    await kie.admin("POST", "faults", { endpoint: "downloadUrl", spec: "reset" });
    const taskId = await kie.createOk(imagen());
    const polled = await kie.record(taskId);
    expect(polled.status).toBe(522);
    expect(polled.json).toBeUndefined();
    expect((await kie.call("GET", "/api/v1/chat/credit")).json.code).toBe(500);
    await expect(kie.call("POST", "/api/v1/common/download-url", { url: "x" })).rejects.toThrow();
  });

  it("a task fault on another endpoint is refused with 400", async () => {
    const kie = await startEmulator();
    for (const spec of ["moderation", "results=2", "format=gif"]) {
      const reply = await kie.admin("POST", "faults", { endpoint: "recordInfo", spec });
      expect(reply.status).toBe(400);
      expect(reply.body.error).toContain("only apply to createTask");
    }
  });

  it("start-up faults (--fault) apply from the first request and come back after a reset", async () => {
    const kie = await startEmulator({ faults: ["fail=501", "recordInfo:delay=50"] });
    const data = await kie.settled(await kie.createOk(imagen()));
    expect(data.failCode).toBe("501");
    await kie.admin("DELETE", "faults");
    expect((await kie.settled(await kie.createOk(imagen()))).state).toBe("success");
    await kie.admin("POST", "reset");
    expect((await kie.admin("GET", "faults")).body.rules.map((r: { spec: string }) => r.spec)).toEqual(["fail=501", "delay=50"]);
  });

  it("a prompt marker wins over a run-wide rule for the same fault", async () => {
    const kie = await startEmulator({ faults: ["fail=501"] });
    const data = await kie.settled(await kie.createOk(imagen("[kie:fail=E7] x")));
    expect(data.failCode).toBe("E7");
  });
});

describe("account errors", () => {
  it("402 once the balance cannot pay for a task; a new balance lifts it", async () => {
    const kie = await startEmulator({ balance: 8, creditsPerTask: 4 });
    for (let i = 0; i < 2; i++) expect((await kie.settled(await kie.createOk(imagen(`t${i}`)))).state).toBe("success");
    const refused = await kie.create(imagen("t2"));
    expect(refused.json).toMatchObject({ code: 402, data: null });
    expect((await kie.admin("GET", "tasks")).body.tasks).toHaveLength(2);
    expect((await kie.call("GET", "/api/v1/chat/credit")).json.data).toBe(0);
    expect((await kie.admin("PUT", "balance", { balance: 100 })).body).toEqual({ balance: 100 });
    expect((await kie.create(imagen("t3"))).json.code).toBe(200);
  });

  it("failed tasks are not charged", async () => {
    const kie = await startEmulator({ balance: 4, creditsPerTask: 4 });
    await kie.settled(await kie.createOk(imagen("[kie:fail] x")));
    expect((await kie.call("GET", "/api/v1/chat/credit")).json.data).toBe(4);
  });

  it("401 and 433 run-wide (a revoked key, a sub-key over its cap)", async () => {
    const kie = await startEmulator();
    await kie.admin("POST", "faults", { spec: "code=433", times: 1 });
    await kie.admin("POST", "faults", { endpoint: "recordInfo", spec: "code=401", times: 1 });
    expect((await kie.create(imagen())).json.code).toBe(433);
    const taskId = await kie.createOk(imagen());
    expect((await kie.record(taskId)).json.code).toBe(401);
    expect((await kie.record(taskId)).json.code).toBe(200);
  });
});
