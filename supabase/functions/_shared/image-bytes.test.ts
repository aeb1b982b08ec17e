import assert from "node:assert/strict";
import { createLanes } from "./image-bytes.ts";

// The kie-callback function shares one set of lanes between every delivery its process serves: a
// lane kept by a task that threw would leave one lane fewer for every later delivery, and with
// both kept nothing would ever be downloaded again.

/** A task that stays running until `finish` is called, and counts how many run at once. */
function gate(counter: { running: number; peak: number }) {
  let finish!: (fail: boolean) => void;
  const done = new Promise<boolean>((resolve) => (finish = resolve));
  const task = async () => {
    counter.peak = Math.max(counter.peak, ++counter.running);
    const fail = await done;
    counter.running--;
    if (fail) throw new Error("task failed");
    return "ok";
  };
  return { task, finish };
}

Deno.test("lanes: at most `limit` tasks at once, started first come, first served", async () => {
  const lanes = createLanes(2);
  const counter = { running: 0, peak: 0 };
  const started: number[] = [];
  const gates = [0, 1, 2, 3].map(() => gate(counter));
  const results = gates.map((g, i) =>
    lanes(() => {
      started.push(i);
      return g.task();
    })
  );
  await new Promise((r) => setTimeout(r, 0));
  assert.deepEqual(started, [0, 1]);
  gates[1].finish(false);
  gates[0].finish(false);
  gates[2].finish(false);
  gates[3].finish(false);
  assert.deepEqual(await Promise.all(results), ["ok", "ok", "ok", "ok"]);
  assert.deepEqual(started, [0, 1, 2, 3]);
  assert.equal(counter.peak, 2);
});

Deno.test("lanes: a task that throws or rejects frees its lane; its caller gets the error", async () => {
  const lanes = createLanes(2);
  // Both lanes taken by tasks that fail: a rejected promise, and an exception thrown before any await.
  const rejected = lanes(() => Promise.reject(new Error("fetch rejected")));
  const thrown = lanes((): Promise<string> => {
    throw new Error("upload threw");
  });
  await assert.rejects(rejected, /fetch rejected/);
  await assert.rejects(thrown, /upload threw/);
  // Twice over, with tasks waiting for the lanes while the failing ones run.
  const counter = { running: 0, peak: 0 };
  const failing = [gate(counter), gate(counter)];
  const waiting = [gate(counter), gate(counter)];
  const first = failing.map((g) => lanes(g.task));
  const next = waiting.map((g) => lanes(g.task));
  failing.forEach((g) => g.finish(true));
  for (const p of first) await assert.rejects(p, /task failed/);
  waiting.forEach((g) => g.finish(false));
  assert.deepEqual(await Promise.all(next), ["ok", "ok"]);
  // Both lanes are free again: two more tasks run at once.
  const counter2 = { running: 0, peak: 0 };
  const last = [gate(counter2), gate(counter2)];
  const ran = last.map((g) => lanes(g.task));
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(counter2.running, 2, "both lanes are free after every failure");
  last.forEach((g) => g.finish(false));
  assert.deepEqual(await Promise.all(ran), ["ok", "ok"]);
});

// A waiter may stop waiting (its delivery gave up, or its sender hung up): it must leave the queue
// then, or a lane freed later would go to a task nobody runs for, and be lost with it.

const tick = () => new Promise((r) => setTimeout(r, 0));

Deno.test("lanes: a waiter whose signal aborts leaves the queue; the freed lane goes to the next live waiter", async () => {
  const lanes = createLanes(1);
  const counter = { running: 0, peak: 0 };
  const holder = gate(counter);
  const held = lanes(holder.task);
  const gaveUp = new AbortController();
  let deadRan = false;
  const dead = lanes(() => {
    deadRan = true;
    return Promise.resolve("ran");
  }, { signal: gaveUp.signal });
  const live = gate(counter);
  const next = lanes(live.task);
  gaveUp.abort(new Error("waited too long"));
  await assert.rejects(dead, /waited too long/, "the waiter's caller gets the signal's reason at once");
  holder.finish(false);
  assert.equal(await held, "ok");
  await tick();
  assert.equal(counter.running, 1, "the lane passed to the live waiter");
  live.finish(false);
  assert.equal(await next, "ok");
  assert.equal(deadRan, false, "the task that gave up never runs");
  // No lane was lost: the single lane is free again.
  const again = gate(counter);
  const last = lanes(again.task);
  await tick();
  assert.equal(counter.running, 1);
  again.finish(false);
  assert.equal(await last, "ok");
});

Deno.test("lanes: a signal aborted before asking takes no lane, even a free one; one aborted after the grant changes nothing", async () => {
  const lanes = createLanes(1);
  const before = new AbortController();
  before.abort(new Error("hung up"));
  let ran = false;
  await assert.rejects(
    lanes(() => {
      ran = true;
      return Promise.resolve("ran");
    }, { signal: before.signal }),
    /hung up/,
  );
  assert.equal(ran, false);
  const counter = { running: 0, peak: 0 };
  const after = new AbortController();
  const g = gate(counter);
  const granted = lanes(g.task, { signal: after.signal });
  after.abort(new Error("too late"));
  g.finish(false);
  assert.equal(await granted, "ok", "a running task is not the lanes' to stop");
  // The lane is free: a next task runs at once.
  const g2 = gate(counter);
  const p2 = lanes(g2.task);
  await tick();
  assert.equal(counter.running, 1);
  g2.finish(false);
  assert.equal(await p2, "ok");
});
