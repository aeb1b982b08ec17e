/**
 * Part 2: dispatch under a burst. N jobs are started at once (4 connections) with the KIE
 * emulator limiting createTask to R per 10 s and the engine's create budget set to the same R per
 * 10 s. Measured: the createTask rate the engine reaches against R, the emulator's 429 count (its
 * admin counters; must be 0) and the time from the first start to the last createTask, next to
 * the shortest time the limit allows.
 */
import type { Row } from "../results.ts";
import { sampleMemory } from "./memory.ts";
import { startStack } from "./stack.ts";
import type { Part } from "./types.ts";

const WINDOW_MS = 10_000;

interface Counters {
  creates: number;
  rateLimited: { createTask: number };
  requests: { createTask: number };
  callbacks: { delivered: number };
}

export const dispatchBurst: Part = {
  id: "dispatch-burst",
  title: "dispatch under a burst",
  async run(context) {
    const jobs = context.quick ? 100 : 2000;
    const limit = context.quick ? 50 : 200;
    const userCount = context.quick ? 20 : 100;
    context.log(`dispatch burst: ${jobs} jobs, limit ${limit} per 10 s`);
    const stack = await startStack(context, {
      createRate: { limit, windowMs: WINDOW_MS },
      pollRate: { limit: 10, windowMs: 1000 },
      createBudget: { perWindow: limit, windowSeconds: WINDOW_MS / 1000 },
      pollBudget: { perWindow: 8, windowSeconds: 1 },
      firstPollSeconds: 15,
      imageSize: 64,
      tickDriver: true,
    });
    try {
      const users = await stack.users(userCount);
      const counters = async () => (await (await fetch(`${stack.kie.url}/__admin/counters`)).json()) as Counters;
      const memory = await sampleMemory("2 dispatch burst", {
        "pg_net worker": stack.pids["pg_net worker"],
        "tick driver": stack.pids["tick driver"],
        "kie-callback function": await stack.functionPid("kie-callback"),
      });

      const firstStart = Date.now();
      let next = 0;
      await Promise.all(Array.from({ length: 4 }, async () => {
        while (next < jobs) {
          const i = next++;
          await stack.start(users[i % users.length], `a burst of kilns, number ${i}`);
        }
      }));
      const lastCommit = Date.now();
      const ideal = (Math.ceil(jobs / limit) - 1) * WINDOW_MS;
      const deadline = Date.now() + 2 * ideal + 30_000;
      while ((await counters()).creates < jobs && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      // The callbacks of the last tasks finish the load the function and the workers see.
      const callbacksDeadline = Date.now() + 30_000;
      while ((await counters()).callbacks.delivered < jobs && Date.now() < callbacksDeadline) {
        await new Promise((r) => setTimeout(r, 100));
      }
      await memory.stop();
      const final = await counters();
      if (final.creates !== jobs) throw new Error(`dispatch burst: ${final.creates} of ${jobs} tasks created`);

      const times = [...stack.kie.state.tasks.values()].map((t) => t.createTime).sort((a, b) => a - b);
      const lastSend = times.at(-1)! - firstStart;
      // The first R go at once; the rest can go no faster than R per window after the first.
      const rate = jobs > limit ? ((jobs - limit) / (times.at(-1)! - times[0])) * WINDOW_MS : NaN;
      const [{ pipeline }] = await stack.sql<{ pipeline: number }[]>`
        select count(*)::int as pipeline from private.requests where kind = 'create' and (http_status = 429 or body_code = 429)`;
      const part = "2 dispatch burst";
      const kase = `${jobs} jobs, R = ${limit} / 10 s`;
      const rows: Row[] = [
        {
          part, case: kase, subject: "createTask rate after the first window", value: rate, unit: "/ 10 s",
          baseline: { name: "emulator limit R", value: limit },
          note: `(N − R) ÷ (last create − first create); engine budget ${limit} per 10 s; starts took ${((lastCommit - firstStart) / 1000).toFixed(1)} s`,
        },
        {
          part, case: kase, subject: "time from the first start to the last createTask", value: lastSend / 1000, unit: "s",
          baseline: { name: "shortest the limit allows", value: ideal / 1000 },
          note: "ticks at the registry's cadence (1 s) by the tick driver",
        },
        {
          part, case: kase, subject: "429 answers to createTask (emulator counter)", value: final.rateLimited.createTask,
          note: `must be 0; createTask requests ${final.requests.createTask} for ${jobs} jobs; 429s in the request log ${pipeline}`,
        },
      ];
      return { rows, sections: [], summary: [`dispatch burst: createTask rate ÷ R ratio ${(rate / limit).toFixed(2)}, 429s ${final.rateLimited.createTask}`] };
    } finally {
      await stack.stop();
    }
  },
};
