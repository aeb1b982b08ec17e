/**
 * Admin surface for tests and scripts, under /__admin/ (a path KIE does not use). Plain JSON,
 * no envelope; bad input gets HTTP 400 `{error}` and changes nothing.
 *
 *   GET    /__admin/tasks[?state=S]     every task: recordInfo data plus faults and callback attempts
 *   GET    /__admin/tasks/:id           one task
 *   POST   /__admin/tasks/:id/advance   move a task one state on (for held tasks)
 *   GET    /__admin/counters            request, limit, task and callback counters
 *   GET    /__admin/faults              run-wide fault rules
 *   POST   /__admin/faults              add one: {spec, endpoint?, times?}
 *   DELETE /__admin/faults[/:id]        remove all rules, or one
 *   GET|PUT /__admin/balance            {balance: integer | null (unlimited)}
 *   GET|PATCH /__admin/config           timers, limits, TTLs, HMAC key
 *   POST   /__admin/reset               back to the state right after start
 */
import type { IncomingMessage } from "node:http";
import { z } from "zod";
import { ENDPOINTS, FaultSyntaxError } from "./faults.ts";
import { json, parseJson, readBody, type Reply } from "./http.ts";
import { SlidingWindow } from "./limits.ts";
import { parseRate } from "./options.ts";
import { type EmulatorState, type Task, TERMINAL } from "./state.ts";
import { recordData, step } from "./tasks.ts";

const error = (status: number, message: string) => json(status, { error: message });

function describe(task: Task) {
  return { ...recordData(task), resultUrls: task.resultUrls, faults: task.faults, callbacks: task.callbacks };
}

const faultBody = z.strictObject({
  spec: z.string().min(1),
  endpoint: z.enum(ENDPOINTS).default("createTask"),
  times: z.number().int().positive().nullable().default(null),
});
const balanceBody = z.strictObject({ balance: z.number().int().nonnegative().nullable() });
const rateText = z.string().transform((value, ctx) => {
  try {
    return parseRate(value);
  } catch (e) {
    ctx.addIssue({ code: "custom", message: (e as Error).message });
    return z.NEVER;
  }
});
const ms = z.number().int().nonnegative();
const configBody = z.strictObject({
  taskMs: ms.optional(),
  callbackDelayMs: ms.optional(),
  callbackTimeoutMs: ms.optional(),
  callbackRetryMs: z.array(ms).optional(),
  createRate: rateText.optional(),
  pollRate: rateText.optional(),
  webhookHmacKey: z.string().min(1).nullable().optional(),
  creditsPerTask: z.number().int().nonnegative().optional(),
  notFoundAfterCreateMs: ms.optional(),
  resultTtlMs: ms.optional(),
  mediaTtlMs: ms.optional(),
  downloadTtlMs: ms.optional(),
  fetchTimeoutMs: ms.optional(),
  maxInputBytes: z.number().int().positive().optional(),
});

async function jsonBody<T>(req: IncomingMessage, schema: z.ZodType<T>): Promise<{ value: T } | { reply: Reply }> {
  const raw = parseJson(await readBody(req, 64 * 1024));
  if (raw === undefined) return { reply: error(400, "body must be JSON") };
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const detail = parsed.error.issues.map((i) => (i.path.length ? `${i.path.join(".")}: ${i.message}` : i.message));
    return { reply: error(400, detail.join("; ")) };
  }
  return { value: parsed.data };
}

function config(state: EmulatorState) {
  const { webhookHmacKey, ...rest } = state.config;
  return { ...rest, webhookHmacKey: webhookHmacKey === null ? null : "(set)" };
}

export async function handleAdmin(state: EmulatorState, req: IncomingMessage, url: URL): Promise<Reply> {
  const parts = url.pathname.split("/").filter(Boolean).slice(1);
  const method = req.method ?? "GET";
  const [resource, id, action] = parts;
  const route = `${method} ${resource ?? ""}${id ? "/:id" : ""}${action ? `/${action}` : ""}`;

  switch (route) {
    case "GET tasks": {
      const wanted = url.searchParams.get("state");
      const tasks = [...state.tasks.values()].filter((t) => !wanted || t.state === wanted).map(describe);
      return json(200, { tasks });
    }
    case "GET tasks/:id": {
      const task = state.tasks.get(id);
      return task ? json(200, describe(task)) : error(404, `no task ${id}`);
    }
    case "POST tasks/:id/advance": {
      const task = state.tasks.get(id);
      if (!task) return error(404, `no task ${id}`);
      if (TERMINAL.includes(task.state)) return error(409, `task ${id} is already ${task.state}`);
      await step(state, task);
      return json(200, describe(task));
    }
    case "GET counters":
      return json(200, state.counters);
    case "GET faults":
      return json(200, { rules: state.faults.list() });
    case "POST faults": {
      const body = await jsonBody(req, faultBody);
      if ("reply" in body) return body.reply;
      try {
        return json(201, state.faults.add(body.value.endpoint, body.value.spec, body.value.times));
      } catch (e) {
        if (e instanceof FaultSyntaxError) return error(400, e.message);
        throw e;
      }
    }
    case "DELETE faults":
      state.faults.clear();
      return json(200, { rules: [] });
    case "DELETE faults/:id": {
      if (!/^\d+$/.test(id)) return error(400, `fault rule id must be an integer, got "${id}"`);
      return state.faults.remove(Number(id)) ? json(200, { rules: state.faults.list() }) : error(404, `no fault rule ${id}`);
    }
    case "GET balance":
      return json(200, { balance: state.balance });
    case "PUT balance": {
      const body = await jsonBody(req, balanceBody);
      if ("reply" in body) return body.reply;
      state.balance = body.value.balance;
      return json(200, { balance: state.balance });
    }
    case "GET config":
      return json(200, config(state));
    case "PATCH config": {
      const body = await jsonBody(req, configBody);
      if ("reply" in body) return body.reply;
      const { createRate, pollRate, ...rest } = body.value;
      Object.assign(state.config, Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)));
      if (createRate) {
        state.config.createRate = createRate;
        state.createLimiter = new SlidingWindow(createRate);
      }
      if (pollRate) {
        state.config.pollRate = pollRate;
        state.pollLimiter = new SlidingWindow(pollRate);
      }
      return json(200, config(state));
    }
    case "POST reset":
      state.reset();
      return json(200, { reset: true });
    default:
      return error(404, `no admin endpoint ${method} ${url.pathname}`);
  }
}
