/** Limits (kie-api.md §7): per-key createTask and recordInfo windows, 429 not queued, counters. */
import { afterEach, describe, expect, it, vi } from "vitest";
import { imagen, startEmulator } from "./support.ts";

// The windows are read from Date.now(): the tests that count within a window freeze it (timers and
// sockets stay real), so a slow machine cannot spread one burst over two windows.
const freezeClock = () => vi.useFakeTimers({ toFake: ["Date"], now: Date.now() });
afterEach(() => {
  vi.useRealTimers();
});

describe("createTask limit", () => {
  it("by default admits 20 per 10 s per key; the 21st gets 429 and is not stored", async () => {
    const kie = await startEmulator({ apiKeys: ["a", "b"], taskMs: 60_000 });
    kie.key = "a";
    const codes: number[] = [];
    for (let i = 0; i < 21; i++) codes.push((await kie.create(imagen(`task ${i}`))).json.code);
    expect(codes.slice(0, 20).every((c) => c === 200)).toBe(true);
    expect(codes[20]).toBe(429);
    const tasks = (await kie.admin("GET", "tasks")).body.tasks as { param: string }[];
    expect(tasks).toHaveLength(20);
    expect(tasks.some((t) => t.param.includes("task 20"))).toBe(false);
    // Another key has its own window.
    expect((await kie.create(imagen(), "b")).json.code).toBe(200);
    const counters = await kie.counters();
    expect(counters.rateLimited).toEqual({ createTask: 1, recordInfo: 0 });
    expect(counters.creates).toBe(21);
    expect(counters.requests.createTask).toBe(22);
  });

  it("the window slides: after it passes, requests are admitted again (429s do not extend it)", async () => {
    const kie = await startEmulator({ createRate: { limit: 2, windowMs: 500 } });
    freezeClock();
    expect((await kie.create(imagen())).json.code).toBe(200);
    vi.advanceTimersByTime(100);
    expect((await kie.create(imagen())).json.code).toBe(200);
    vi.advanceTimersByTime(300);
    expect((await kie.create(imagen())).json.code).toBe(429);
    // 500 ms after the first: one place is free again, though a 429 came 100 ms ago.
    vi.advanceTimersByTime(100);
    expect((await kie.create(imagen())).json.code).toBe(200);
    expect((await kie.create(imagen())).json.code).toBe(429);
    // 500 ms after the second.
    vi.advanceTimersByTime(100);
    expect((await kie.create(imagen())).json.code).toBe(200);
    expect((await kie.admin("GET", "tasks")).body.tasks).toHaveLength(4);
  });

  it("is configurable at run time through the admin endpoint", async () => {
    const kie = await startEmulator();
    expect((await kie.admin("PATCH", "config", { createRate: "1/10s" })).status).toBe(200);
    expect((await kie.create(imagen())).json.code).toBe(200);
    expect((await kie.create(imagen())).json.code).toBe(429);
  });
});

describe("recordInfo limit", () => {
  it("admits 10 per second per key by default; the 11th gets 429", async () => {
    const kie = await startEmulator({ pollRate: { limit: 10, windowMs: 1000 } });
    const taskId = await kie.createOk(imagen());
    freezeClock();
    const codes: number[] = [];
    for (let i = 0; i < 11; i++) codes.push((await kie.record(taskId)).json.code);
    expect(codes).toEqual([...Array(10).fill(200), 429]);
    const counters = await kie.counters();
    expect(counters.rateLimited).toEqual({ createTask: 0, recordInfo: 1 });
    expect(counters.polls).toBe(10);
  });

  it("counters stay at zero 429s for a client that keeps under the limits", async () => {
    const kie = await startEmulator({ pollRate: { limit: 10, windowMs: 1000 } });
    const ids = [await kie.createOk(imagen("a")), await kie.createOk(imagen("b"))];
    for (const id of ids) expect((await kie.record(id)).json.code).toBe(200);
    expect((await kie.counters()).rateLimited).toEqual({ createTask: 0, recordInfo: 0 });
  });
});
