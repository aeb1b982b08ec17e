/**
 * Part 5: the callback path's throughput. Jobs are taken through the pipeline with their
 * callbacks held back (dropped by the emulator, polling far away), so each waits as `generating`
 * with a finished task. Then their callbacks are delivered as KIE sends them, 8 at a time, through
 * the gateway to kie-callback (download the image, store it, the completion SQL). The baseline is
 * the same requests, same bodies and concurrency, through the same gateway to a Deno function
 * that does nothing (scripts/bench/functions/bench-noop), interleaved round by round.
 */
import { callbackBody } from "../../dev-stack/kie-emulator/callbacks.ts";
import type { Row } from "../results.ts";
import { sampleMemory } from "./memory.ts";
import { median, percentile } from "../stats.ts";
import { startStack } from "./stack.ts";
import type { Part } from "./types.ts";

const CONCURRENCY = 8;
const IMAGE_PX = 256;

interface Call {
  url: string;
  body: string;
}

/** Sends the calls CONCURRENCY at a time; every answer must be 200. */
async function deliver(calls: Call[]): Promise<{ perSecond: number; latencies: number[] }> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < calls.length) {
      const call = calls[next++];
      const t = performance.now();
      const res = await fetch(call.url, { method: "POST", headers: { "content-type": "application/json" }, body: call.body });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`callback path: ${call.url.split("?")[0]} answered ${res.status}`);
      latencies.push(performance.now() - t);
    }
  }));
  return { perSecond: calls.length / ((performance.now() - started) / 1000), latencies };
}

export const callbackPath: Part = {
  id: "callback-path",
  title: "callback path throughput",
  async run(context) {
    const jobs = context.quick ? 60 : 900;
    const rounds = context.quick ? 2 : 3;
    context.log(`callback path: ${jobs} callbacks in ${rounds} rounds, ${CONCURRENCY} at a time`);
    const stack = await startStack(context, {
      createRate: { limit: 200, windowMs: 1000 },
      pollRate: { limit: 10, windowMs: 1000 },
      createBudget: { perWindow: 200, windowSeconds: 1 },
      pollBudget: { perWindow: 8, windowSeconds: 1 },
      firstPollSeconds: 3600,
      imageSize: IMAGE_PX,
      tickDriver: true,
    });
    try {
      const users = await stack.users(40);
      const ids: string[] = [];
      for (let i = 0; i < jobs; i++) ids.push(await stack.start(users[i % users.length], `a held kiln, number ${i} [kie:callback=drop]`));
      const deadline = Date.now() + 120_000;
      for (;;) {
        const [{ ready }] = await stack.sql<{ ready: number }[]>`
          select count(*)::int as ready from public.generation_jobs where id = any(${ids}) and status = 'generating'`;
        if (ready === jobs && stack.kie.state.counters.tasks.success >= jobs) break;
        if (Date.now() > deadline) throw new Error(`callback path: only ${ready} of ${jobs} jobs generating after 120 s`);
        await new Promise((r) => setTimeout(r, 200));
      }
      const tasks = [...stack.kie.state.tasks.values()];
      const calls: Call[] = tasks.map((t) => ({ url: t.callBackUrl!, body: JSON.stringify(callbackBody(t)) }));
      const noopUrl = `${stack.gateway.url}/functions/v1/bench-noop`;
      const imageBytes = [...stack.kie.state.files.values()].reduce((sum, f) => sum + f.bytes.length, 0) / stack.kie.state.files.size;

      const memory = await sampleMemory("5 callback path", {
        "pg_net worker": stack.pids["pg_net worker"],
        "tick driver": stack.pids["tick driver"],
        "kie-callback function": await stack.functionPid("kie-callback"),
      });
      const noop: { perSecond: number; latencies: number[] }[] = [];
      const real: typeof noop = [];
      const size = Math.ceil(calls.length / rounds);
      for (let r = 0; r < rounds; r++) {
        const chunk = calls.slice(r * size, (r + 1) * size);
        noop.push(await deliver(chunk.map((c) => ({ url: `${noopUrl}?${new URL(c.url).searchParams}`, body: c.body }))));
        real.push(await deliver(chunk));
      }
      await memory.stop();

      const [{ completed }] = await stack.sql<{ completed: number }[]>`
        select count(*)::int as completed from public.generation_jobs j
         where j.id = any(${ids}) and j.status = 'completed'
           and exists (select 1 from storage.objects o where o.bucket_id = 'generated-images' and o.name like j.user_id || '/' || j.id || '/%')`;
      if (completed !== jobs) throw new Error(`callback path: ${completed} of ${jobs} jobs completed with their image stored`);

      const all = (runs: typeof noop) => runs.flatMap((r) => r.latencies).sort((a, b) => a - b);
      const noopRate = median(noop.map((r) => r.perSecond));
      const realRate = median(real.map((r) => r.perSecond));
      const kase = `${jobs} callbacks, ${CONCURRENCY} at a time`;
      const rows: Row[] = [
        {
          part: "5 callback path", case: kase, subject: "do-nothing function (baseline)", value: noopRate, unit: "/s",
          p50Ms: percentile(all(noop), 50), p99Ms: percentile(all(noop), 99),
          note: "same gateway, Deno, bodies and concurrency",
        },
        {
          part: "5 callback path", case: kase, subject: "kie-callback: image download, Storage upload, completion SQL", value: realRate, unit: "/s",
          p50Ms: percentile(all(real), 50), p99Ms: percentile(all(real), 99),
          baseline: { name: "do-nothing", value: noopRate },
          note: `image ${IMAGE_PX} px PNG, ${(imageBytes / 1024).toFixed(1)} KiB; median of ${rounds} interleaved rounds`,
        },
      ];
      return { rows, sections: [], summary: [`callback path: ${realRate.toFixed(0)} callbacks/s, do-nothing ${noopRate.toFixed(0)}/s, ratio ${(realRate / noopRate).toFixed(2)}`] };
    } finally {
      await stack.stop();
    }
  },
};
