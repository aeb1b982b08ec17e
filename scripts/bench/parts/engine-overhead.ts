/**
 * Part 3: engine overhead. The emulator answers at once (task time 0); jobs are started at a
 * steady pace, alternately on the callback path and on the poll path (callback dropped, the poll
 * tick finds the result and sends the finalize request). Measured per job: from the start's
 * commit to the job row `completed` with its image stored, against the emulator's own
 * create → terminal time for the same tasks.
 */
import type { Row } from "../results.ts";
import { percentile } from "../stats.ts";
import { startStack } from "./stack.ts";
import type { Part } from "./types.ts";

type Path = "callback" | "poll";

export const engineOverhead: Part = {
  id: "engine-overhead",
  title: "engine overhead",
  async run(context) {
    const perPath = context.quick ? 25 : 500;
    const perSecond = 20;
    context.log(`engine overhead: ${perPath} jobs per path, ${perSecond} starts a second`);
    const stack = await startStack(context, {
      // Limits and budgets out of the way: this part measures latency, not the limits.
      createRate: { limit: 200, windowMs: 1000 },
      pollRate: { limit: 200, windowMs: 1000 },
      createBudget: { perWindow: 200, windowSeconds: 1 },
      pollBudget: { perWindow: 100, windowSeconds: 1 },
      firstPollSeconds: 0,
      imageSize: 256,
      tickDriver: true,
    });
    try {
      const users = await stack.users(40);
      const started: { id: string; path: Path; committedAt: number }[] = [];
      const first = Date.now();
      for (let i = 0; i < 2 * perPath; i++) {
        const wait = first + (i * 1000) / perSecond - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        const path: Path = i % 2 === 0 ? "callback" : "poll";
        const prompt = `a kiln at dawn, number ${i}${path === "poll" ? " [kie:callback=drop]" : ""}`;
        const id = await stack.start(users[i % users.length], prompt);
        started.push({ id, path, committedAt: Date.now() });
      }
      const ids = started.map((s) => s.id);
      const deadline = Date.now() + 60_000;
      for (;;) {
        const [{ open }] = await stack.sql<{ open: number }[]>`
          select count(*)::int as open from public.generation_jobs where id = any(${ids}) and status not in ('completed', 'failed')`;
        if (open === 0) break;
        if (Date.now() > deadline) throw new Error(`engine overhead: ${open} jobs still open after 60 s`);
        await new Promise((r) => setTimeout(r, 200));
      }
      const done = await stack.sql<{ id: string; status: string; completed_ms: number; task_id: string | null; stored: number; finalized: boolean }[]>`
        select j.id, j.status, extract(epoch from j.completed_at) * 1000 as completed_ms, p.task_id,
               (select count(*)::int from storage.objects o
                 where o.bucket_id = 'generated-images' and o.name = any(array(select substr(u, length('generated-images/') + 1) from unnest(j.result_urls) u))) as stored,
               exists (select 1 from private.requests q where q.job_id = j.id and q.kind = 'finalize') as finalized
          from public.generation_jobs j join private.job_pipeline p on p.job_id = j.id
         where j.id = any(${ids})`;
      const byId = new Map(done.map((d) => [d.id, d]));
      const rows: Row[] = [];
      const summary: string[] = [];
      const split = ["| path | commit → KIE has the createTask | KIE create → terminal | terminal → completed with image |", "|---|---|---|---|"];
      for (const path of ["callback", "poll"] as Path[]) {
        const mine = started.filter((s) => s.path === path).map((s) => ({ ...s, row: byId.get(s.id)! }));
        const bad = mine.filter((m) => m.row.status !== "completed" || m.row.stored < 1 || m.row.finalized !== (path === "poll"));
        if (bad.length) throw new Error(`engine overhead: ${bad.length} ${path}-path jobs not completed that way with their image stored`);
        const engine = mine.map((m) => Number(m.row.completed_ms) - m.committedAt).sort((a, b) => a - b);
        const emulator = mine.map((m) => {
          const task = stack.kie.state.tasks.get(m.row.task_id!)!;
          return task.completeTime! - task.createTime;
        }).sort((a, b) => a - b);
        const tasks = mine.map((m) => ({ m, task: stack.kie.state.tasks.get(m.row.task_id!)! }));
        const sorted = (f: (x: (typeof tasks)[number]) => number) => tasks.map(f).sort((a, b) => a - b);
        const legs = [
          sorted(({ m, task }) => task.createTime - m.committedAt),
          sorted(({ task }) => task.completeTime! - task.createTime),
          sorted(({ m, task }) => Number(m.row.completed_ms) - task.completeTime!),
        ].map((v) => `${percentile(v, 50).toFixed(0)} / ${percentile(v, 95).toFixed(0)}`);
        split.push(`| ${path} | ${legs.join(" | ")} |`);
        rows.push({
          part: "3 engine overhead",
          case: `${path} path, ${perPath} jobs`,
          subject: "commit → completed with image stored (p50)",
          value: percentile(engine, 50),
          unit: "ms",
          p50Ms: percentile(engine, 50),
          p99Ms: percentile(engine, 99),
          baseline: { name: "emulator create → terminal p50", value: percentile(emulator, 50) },
          note: `p95 ${percentile(engine, 95).toFixed(0)} ms; emulator p95 ${percentile(emulator, 95).toFixed(1)} / p99 ${percentile(emulator, 99).toFixed(1)} ms; ` +
            (path === "poll" ? "callback dropped, first poll due at once (poll.first_after_seconds 0)" : "callback delivered at once"),
        });
        summary.push(`engine overhead, ${path} path: p50 ${percentile(engine, 50).toFixed(0)} ms, p95 ${percentile(engine, 95).toFixed(0)} ms, p99 ${percentile(engine, 99).toFixed(0)} ms`);
      }
      return {
        rows,
        sections: [{
          title: "Engine overhead: how it was measured",
          body: `${2 * perPath} jobs started at ${perSecond} a second, alternately on the callback path and the poll path, ` +
            "each by one user of 40. Emulator task time 0, 256 px images. Ticks: the tick driver runs reconcile, dispatch and poll " +
            "at the registry's cadence (every 1 s; it looks for due ticks every 250 ms), so the poll path waits for up to three ticks " +
            "(reconcile the createTask answer, poll, reconcile the poll answer) before its finalize request. Time runs from the start's " +
            "commit (client clock) to `generation_jobs.completed_at` (same host), and each job's image is checked in storage.objects.\n\n" +
            "Where the time goes, p50 / p95 ms (the emulator's clock marks when it had the request and when the task ended):\n\n" +
            split.join("\n"),
        }],
        summary,
      };
    } finally {
      await stack.stop();
    }
  },
};
