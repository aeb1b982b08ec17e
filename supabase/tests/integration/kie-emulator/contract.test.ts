/** The KIE contract (kie-api.md §1–§3, §7): envelope, auth, validation, param, ids, credit. */
import { describe, expect, it } from "vitest";
import { imagen, startEmulator, waitFor } from "./support.ts";

const nanoEdit = (input: Record<string, unknown>) => ({
  model: "google/nano-banana-edit",
  input: { prompt: "make it blue", image_urls: ["https://example.com/a.png"], ...input },
});
const nanoPro = (input: Record<string, unknown>) => ({ model: "nano-banana-pro", input: { prompt: "a lamp", ...input } });

describe("createTask", () => {
  it("answers HTTP 200 with {code:200, msg, data:{taskId}} and an opaque 32-hex id", async () => {
    const kie = await startEmulator({ taskMs: 60_000 });
    const reply = await kie.create(imagen());
    expect(reply.status).toBe(200);
    expect(reply.json).toEqual({ code: 200, msg: "success", data: { taskId: expect.stringMatching(/^[0-9a-f]{32}$/) } });
    const other = await kie.createOk(imagen());
    expect(other).not.toBe(reply.json.data!.taskId);
  });

  it("stores param as the JSON string of the whole request body", async () => {
    const kie = await startEmulator({ taskMs: 60_000 });
    const body = { model: "google/imagen4-fast", callBackUrl: "https://example.com/cb?t=1", input: { prompt: "p", aspect_ratio: "16:9", seed: 7 } };
    const taskId = await kie.createOk(body);
    const { json } = await kie.record(taskId);
    expect(typeof json.data!.param).toBe("string");
    expect(JSON.parse(json.data!.param)).toEqual(body);
    expect(json.data!.model).toBe("google/imagen4-fast");
  });

  it.each([
    ["no key", null],
    ["a wrong key", "not-a-key"],
  ])("with %s: HTTP 200, body code 401, nothing stored", async (_label, key) => {
    const kie = await startEmulator();
    const reply = await kie.create(imagen(), key);
    expect(reply.status).toBe(200);
    expect(reply.json.code).toBe(401);
    expect((await kie.admin("GET", "tasks")).body.tasks).toHaveLength(0);
    expect((await kie.counters()).unauthorized).toBe(1);
  });

  it("accepts every key given (--api-key is repeatable)", async () => {
    const kie = await startEmulator({ apiKeys: ["one", "two"] });
    expect((await kie.create(imagen(), "one")).json.code).toBe(200);
    expect((await kie.create(imagen(), "two")).json.code).toBe(200);
    expect((await kie.create(imagen(), "three")).json.code).toBe(401);
  });

  it.each([
    ["unknown model", { model: "google/imagen5", input: { prompt: "p" } }, "not supported"],
    ["no model", { input: { prompt: "p" } }, "model is required"],
    ["no input", { model: "google/imagen4" }, "input is required"],
    ["no prompt", { model: "google/imagen4", input: {} }, "prompt is required"],
    ["blank prompt", { model: "google/imagen4", input: { prompt: "  " } }, "prompt is required"],
    ["imagen prompt over 5000", imagen("x".repeat(5001)), "5000"],
    ["nano pro prompt over 10000", nanoPro({ prompt: "x".repeat(10001) }), "10000"],
    ["imagen aspect 21:9", imagen("p", { aspect_ratio: "21:9" }), "aspect_ratio"],
    ["imagen aspect auto", imagen("p", { aspect_ratio: "auto" }), "aspect_ratio"],
    ["aspect not a string", imagen("p", { aspect_ratio: 1 }), "aspect_ratio"],
    ["nano edit without images", nanoEdit({ image_urls: [] }), "at least 1"],
    ["nano edit with 11 images", nanoEdit({ image_urls: Array(11).fill("https://example.com/a.png") }), "at most 10"],
    ["nano pro with 9 images", nanoPro({ image_input: Array(9).fill("https://example.com/a.png") }), "at most 8"],
    ["nano edit images under the wrong field", nanoEdit({ image_urls: undefined, image_input: ["https://example.com/a.png"] }), "at least 1"],
    ["a data URI", nanoEdit({ image_urls: ["data:image/png;base64,AAAA"] }), "http(s)"],
    ["image list not an array", nanoEdit({ image_urls: "https://example.com/a.png" }), "array"],
    ["callBackUrl not http", { ...imagen(), callBackUrl: "ftp://example.com/cb" }, "callBackUrl"],
  ])("refuses %s with body code 422 and stores nothing", async (_label, body, msg) => {
    const kie = await startEmulator();
    const reply = await kie.create(body);
    expect(reply.status).toBe(200);
    expect(reply.json).toMatchObject({ code: 422, msg: expect.stringContaining(msg), data: null });
    expect((await kie.admin("GET", "tasks")).body.tasks).toHaveLength(0);
  });

  it.each([
    ["imagen at the prompt limit", imagen("x".repeat(5000))],
    ["nano pro at its prompt limit, no images", nanoPro({ prompt: "x".repeat(10000) })],
    ["nano pro with 8 images", nanoPro({ image_input: Array(8).fill("https://example.com/a.png") })],
    ["nano edit with 10 images, auto aspect", nanoEdit({ image_urls: Array(10).fill("https://example.com/a.png"), aspect_ratio: "auto" })],
    ["nano edit with the older image_size field", nanoEdit({ image_size: "21:9" })],
    ["imagen ultra without aspect ratio", { model: "google/imagen4-ultra", input: { prompt: "p" } }],
  ])("accepts %s", async (_label, body) => {
    const kie = await startEmulator({ taskMs: 60_000 });
    expect((await kie.create(body)).json.code).toBe(200);
  });

  it("answers body code 400 to a body that is not JSON", async () => {
    const kie = await startEmulator();
    const reply = await kie.create("{not json");
    expect(reply.json.code).toBe(400);
  });
});

describe("recordInfo", () => {
  it("answers 400 without taskId", async () => {
    const kie = await startEmulator();
    const reply = await kie.record(null);
    expect(reply.status).toBe(200);
    expect(reply.json.code).toBe(400);
  });

  it("answers 422 'recordInfo is null' with data null for an unknown id", async () => {
    const kie = await startEmulator();
    const reply = await kie.record("0123456789abcdef0123456789abcdef");
    expect(reply.json).toEqual({ code: 422, msg: "recordInfo is null", data: null });
  });

  it("answers 401 in the body for a bad key", async () => {
    const kie = await startEmulator();
    const taskId = await kie.createOk(imagen());
    expect((await kie.record(taskId, "wrong")).json.code).toBe(401);
  });

  it("answers 422 for a short window after creation when configured, then the task", async () => {
    const kie = await startEmulator({ notFoundAfterCreateMs: 500, taskMs: 60_000 });
    const taskId = await kie.createOk(imagen());
    expect((await kie.record(taskId)).json).toEqual({ code: 422, msg: "recordInfo is null", data: null });
    await waitFor(async () => (await kie.record(taskId)).json.code === 200);
    expect((await kie.record(taskId)).json.data!.state).toBe("waiting");
  });
});

describe("chat/credit", () => {
  it("returns the balance as an integer, and 401 for a bad key", async () => {
    const kie = await startEmulator({ balance: 37 });
    expect((await kie.call("GET", "/api/v1/chat/credit")).json).toEqual({ code: 200, msg: "success", data: 37 });
    expect((await kie.call("GET", "/api/v1/chat/credit", undefined, "bad")).json.code).toBe(401);
  });

  it("reports a large integer when no balance is set, and goes down by creditsConsumed per success", async () => {
    const kie = await startEmulator({ balance: 10, creditsPerTask: 3 });
    const data = await kie.settled(await kie.createOk(imagen()));
    expect(data.creditsConsumed).toBe(3);
    expect((await kie.call("GET", "/api/v1/chat/credit")).json.data).toBe(7);
    const unlimited = await startEmulator();
    expect(Number.isInteger((await unlimited.call("GET", "/api/v1/chat/credit")).json.data)).toBe(true);
  });
});

describe("unknown paths", () => {
  it("answer HTTP 404", async () => {
    const kie = await startEmulator();
    expect((await kie.call("GET", "/api/v1/jobs/createTask")).status).toBe(404);
    expect((await kie.call("POST", "/api/v1/nope", {})).status).toBe(404);
  });
});
