/**
 * The task state machine: waiting → queuing → generating → success | fail.
 *
 * A task spends 10 % of its time waiting, 20 % queuing and the rest generating; the download of
 * its input images and the rendering start on entering generating, and the terminal state waits
 * for them. A held task (fault `hold`) moves only when the admin endpoint advances it.
 */
import { randomBytes } from "node:crypto";
import type { ValidCreate } from "./catalogue.ts";
import type { FaultSet } from "./faults.ts";
import {
  fetchInput,
  firstPngSize,
  InputFetchError,
  renderFromInputs,
  renderErrorPage,
  renderGif,
  renderTextToImage,
  resultExtension,
  sizeFor,
} from "./images.ts";
import { scheduleCallbacks } from "./callbacks.ts";
import { type EmulatorState, type Task, TERMINAL, type WorkOutcome } from "./state.ts";

/** failCode/failMsg of the failures the emulator produces ([assume]: KIE documents none). */
export const FAILURES = {
  generation: (code: string) => ({ failCode: code, failMsg: "internal error: the image could not be generated" }),
  moderation: {
    failCode: "400",
    failMsg: "Your prompt or image was flagged by content moderation (policy violation) and was not generated",
  },
  download: (message: string) => ({ failCode: "422", failMsg: message }),
};

/** When the task leaves each state, as a share of its time since creation. */
const LEAVES_AT: Record<string, number> = { waiting: 0.1, queuing: 0.3, generating: 1 };

export function createTask(
  state: EmulatorState,
  valid: ValidCreate,
  body: unknown,
  apiKey: string,
  faults: FaultSet,
): Task {
  const now = Date.now();
  const task: Task = {
    taskId: randomBytes(16).toString("hex"),
    model: valid.facts.kieModel,
    state: "waiting",
    param: JSON.stringify(body),
    apiKey,
    prompt: valid.prompt,
    aspectRatio: valid.aspectRatio,
    imageUrls: valid.imageUrls,
    callBackUrl: valid.callBackUrl,
    faults,
    taskMs: faults.slow ?? state.config.taskMs,
    createTime: now,
    updateTime: now,
    completeTime: null,
    resultUrls: [],
    failCode: "",
    failMsg: "",
    creditsConsumed: null,
    callbacks: [],
    timer: null,
    work: null,
    epoch: state.epoch,
  };
  state.tasks.set(task.taskId, task);
  state.counters.creates++;
  scheduleNext(state, task);
  return task;
}

function scheduleNext(state: EmulatorState, task: Task): void {
  if (task.faults.hold || TERMINAL.includes(task.state)) return;
  // Targets are absolute, so costTime is never short of the task's time; +1 ms because a timer
  // may fire a millisecond early by the wall clock.
  const target = task.createTime + Math.round(task.taskMs * LEAVES_AT[task.state]);
  const delay = task.taskMs === 0 ? 0 : Math.max(0, target - Date.now()) + 1;
  task.timer = state.timers.after(delay, () => {
    task.timer = null;
    void step(state, task).catch((error: Error) => state.log(`task ${task.taskId}: ${error.message}`));
  });
}

const inFlight = new WeakMap<Task, Promise<void>>();

/** Moves a task one state on (waiting for its generation work before the terminal state). */
export function step(state: EmulatorState, task: Task): Promise<void> {
  const running = inFlight.get(task);
  if (running) return running;
  state.timers.cancel(task.timer);
  task.timer = null;
  const done = (async () => {
    if (task.state === "waiting") move(task, "queuing");
    else if (task.state === "queuing") {
      move(task, "generating");
      task.work = generate(state, task);
    } else if (task.state === "generating") {
      const outcome = await (task.work ?? generate(state, task));
      if (task.epoch !== state.epoch) return;
      finish(state, task, outcome);
      return;
    } else return;
    scheduleNext(state, task);
  })().finally(() => inFlight.delete(task));
  inFlight.set(task, done);
  return done;
}

function move(task: Task, to: Task["state"]): void {
  task.state = to;
  task.updateTime = Date.now();
}

async function generate(state: EmulatorState, task: Task): Promise<WorkOutcome> {
  if (task.faults.moderation) return { ok: false, ...FAILURES.moderation };
  if (task.faults.fail) return { ok: false, ...FAILURES.generation(task.faults.fail) };
  const { fetchTimeoutMs, maxInputBytes, imageSize } = state.config;
  let inputs: Buffer[];
  try {
    inputs = await Promise.all(
      task.imageUrls.map((url) => fetchInput(url, fetchTimeoutMs, maxInputBytes, state.timers.signal)),
    );
  } catch (error) {
    if (error instanceof InputFetchError) return { ok: false, ...FAILURES.download(error.message) };
    throw error;
  }
  const size = sizeFor(task.aspectRatio, imageSize, firstPngSize(inputs));
  let image: Buffer;
  // format=gif: the prompt's pattern as a GIF, a type of image the caller's bucket may not take.
  if (task.faults.format === "gif") image = renderGif(task.prompt, size);
  // format=html: the file host's error page, served with 200, where the image should be.
  else if (task.faults.format === "html") image = renderErrorPage();
  else image = inputs.length ? renderFromInputs(task.prompt, inputs, size) : renderTextToImage(task.prompt, size);
  // results=N: the task reports N result URLs (copies of the one image) instead of one.
  return { ok: true, images: Array.from({ length: task.faults.results ?? 1 }, () => image) };
}

function finish(state: EmulatorState, task: Task, outcome: WorkOutcome): void {
  const now = Date.now();
  if (outcome.ok) {
    task.resultUrls = outcome.images.map((bytes, i) => {
      const name = `${i}.${resultExtension(bytes)}`;
      state.files.set(`${task.taskId}/${name}`, { taskId: task.taskId, bytes, createdAt: now });
      return `${state.baseUrl}/files/${task.taskId}/${name}`;
    });
    task.creditsConsumed = state.config.creditsPerTask;
    if (state.balance !== null) state.balance = Math.max(0, state.balance - task.creditsConsumed);
    state.counters.tasks.success++;
  } else {
    task.failCode = outcome.failCode;
    task.failMsg = outcome.failMsg;
    // Failed tasks are not charged (§3).
    task.creditsConsumed = 0;
    state.counters.tasks.fail++;
  }
  task.state = outcome.ok ? "success" : "fail";
  task.completeTime = now;
  task.updateTime = now;
  scheduleCallbacks(state, task);
}

/** recordInfo `data` (§3): the same object goes into callbacks (§4). */
export function recordData(task: Task) {
  const terminal = task.completeTime !== null;
  return {
    taskId: task.taskId,
    model: task.model,
    state: task.state,
    param: task.param,
    resultJson: task.state === "success" ? JSON.stringify({ resultUrls: task.resultUrls }) : "",
    failCode: task.failCode,
    failMsg: task.failMsg,
    // Milliseconds from create to terminal state (the documented unit).
    costTime: terminal ? task.completeTime! - task.createTime : null,
    completeTime: task.completeTime,
    createTime: task.createTime,
    updateTime: task.updateTime,
    creditsConsumed: task.creditsConsumed,
  };
}
