import assert from "node:assert/strict";
import {
  DELIVERY,
  failureBody,
  FINALIZE_CREDENTIAL,
  harness,
  HMAC_KEY,
  JOB,
  JPEG,
  NOW_MS,
  PNG,
  sign,
  successBody,
  TASK,
  TOKEN,
  URL_A,
  URL_B,
  USER,
  WEBP,
} from "./fakes.ts";

async function ready(env: Record<string, string> = {}) {
  const h = harness(env);
  await h.db.addAttempt({});
  h.web.serve(URL_A, PNG);
  h.web.serve(URL_B, JPEG, { "content-type": "image/jpeg" });
  return h;
}

/** Nothing was downloaded, stored or recorded. */
function assertUntouched(h: Awaited<ReturnType<typeof ready>>) {
  assert.equal(h.web.requested.length, 0, "nothing downloaded");
  assert.equal(h.storage.uploads, 0, "nothing stored");
  assert.deepEqual(h.db.completed, [], "not completed");
  assert.deepEqual(h.db.failures, [], "no failure recorded");
}

// ---------------------------------------------------------------------------------------------
// Success, in every body variant KIE is known to send
// ---------------------------------------------------------------------------------------------

const { taskId: _t, ...withoutTaskId } = successBody().data;
const { msg: _m, ...withoutMsg } = successBody();
const successVariants: [string, unknown][] = [
  ["documented body", successBody()],
  ["task_id instead of taskId", { ...successBody(), data: { ...withoutTaskId, task_id: TASK } }],
  ["resultJson as an object", successBody({ resultJson: { resultUrls: [URL_A] } })],
  [
    "older credit fields",
    successBody({ creditsConsumed: undefined, consumeCredits: 4, remainedCredits: 96 }),
  ],
  ["message instead of msg", { ...withoutMsg, message: "done" }],
  [
    "numbers as strings",
    successBody({ costTime: "15", creditsConsumed: "4", completeTime: "1766999995000" }, {
      code: "200",
    }),
  ],
  ["no state (callbacks only fire on terminal states)", successBody({ state: undefined })],
];

for (const [name, body] of successVariants) {
  Deno.test(`success callback (${name}): image stored, then the job completed`, async () => {
    const h = await ready();
    const res = await h.callback(body);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body, { code: 200, msg: "success", result: "completed" });
    const stored = h.storage.objects.get(`generated-images/${USER}/${JOB}/${DELIVERY}/0.png`);
    assert.deepEqual(stored, { bytes: PNG, contentType: "image/png" });
    assert.deepEqual(h.db.completed, [{
      jobId: JOB,
      attempt: 1,
      taskId: TASK,
      paths: [`generated-images/${USER}/${JOB}/${DELIVERY}/0.png`],
    }]);
    // The database reads the report exactly as KIE sent it.
    assert.deepEqual(h.db.reports, [JSON.parse(JSON.stringify(body))]);
  });
}

Deno.test("several results: each stored under its number with the extension its bytes prove", async () => {
  const h = await ready();
  const urlC = "https://tempfile.aiquickdraw.com/f/c";
  // Served as PNG, really WebP: the bytes decide.
  h.web.serve(urlC, WEBP, { "content-type": "image/png" });
  const res = await h.callback(
    successBody({ resultJson: JSON.stringify({ resultUrls: [URL_A, URL_B, urlC] }) }),
  );
  assert.equal(res.status, 200);
  assert.deepEqual(h.db.completed[0].paths, [
    `generated-images/${USER}/${JOB}/${DELIVERY}/0.png`,
    `generated-images/${USER}/${JOB}/${DELIVERY}/1.jpg`,
    `generated-images/${USER}/${JOB}/${DELIVERY}/2.webp`,
  ]);
  assert.equal(
    h.storage.objects.get(`generated-images/${USER}/${JOB}/${DELIVERY}/2.webp`)?.contentType,
    "image/webp",
  );
});

// ---------------------------------------------------------------------------------------------
// Failure: handed to the database as reported
// ---------------------------------------------------------------------------------------------

const { taskId: _f, ...failWithoutTaskId } = failureBody().data;
const { msg: _fm, ...failWithoutMsg } = failureBody();
const failureVariants: [string, unknown, string | null, string][] = [
  ["documented body", failureBody(), "500", "Content policy violation"],
  [
    "task_id, numeric failCode",
    { ...failureBody(), data: { ...failWithoutTaskId, task_id: TASK, failCode: 422 } },
    "422",
    "Content policy violation",
  ],
  [
    "code as a string, message, no failMsg",
    {
      ...failWithoutMsg,
      code: "501",
      message: "Generation failed",
      data: { ...failureBody().data, failMsg: undefined },
    },
    "500",
    "Generation failed",
  ],
  ["no state", failureBody({ state: undefined, failCode: null }), null, "Content policy violation"],
];

for (const [name, body, code, message] of failureVariants) {
  Deno.test(`failure callback (${name}): recorded, nothing downloaded`, async () => {
    const h = await ready();
    const res = await h.callback(body);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.result, "failure_recorded");
    assert.deepEqual(h.db.failures, [{ jobId: JOB, attempt: 1, taskId: TASK, code, message }]);
    assert.deepEqual(h.db.completed, []);
    assert.equal(h.web.requested.length, 0);
  });
}

Deno.test("a report the database cannot read is refused with its reason (422), nothing changed", async () => {
  const h = await ready();
  const res = await h.callback(successBody({ resultJson: "{not json" }, { code: 500 }));
  assert.equal(res.status, 422);
  assert.match(String(res.body.msg), /unreadable report: KIE code 500/);
  assertUntouched(h);
});

Deno.test("a report of a task still running records nothing (202)", async () => {
  const h = await ready();
  const res = await h.callback(successBody({ state: "generating", resultJson: "" }));
  assert.equal(res.status, 202);
  assertUntouched(h);
});

// ---------------------------------------------------------------------------------------------
// Duplicates: 200 without redoing work
// ---------------------------------------------------------------------------------------------

Deno.test("a repeated success callback answers 200 without downloading or storing again", async () => {
  const h = await ready();
  assert.equal((await h.callback(successBody())).status, 200);
  const again = await h.callback(successBody());
  assert.equal(again.status, 200);
  assert.equal(again.body.result, "duplicate");
  assert.equal(h.web.requested.length, 1, "downloaded once");
  assert.equal(h.storage.uploads, 1, "stored once");
  assert.equal(h.db.completed.length, 1);
  assert.equal(h.db.reports.length, 1, "the second delivery is not even read");
});

Deno.test("a failure callback after completion is a duplicate and changes nothing", async () => {
  const h = await ready();
  await h.callback(successBody());
  const late = await h.callback(failureBody());
  assert.equal(late.status, 200);
  assert.equal(late.body.result, "duplicate");
  assert.deepEqual(h.db.failures, []);
});

Deno.test("when the database says the attempt was finished meanwhile, the answer is duplicate", async () => {
  const h = await ready();
  // Another delivery finished the job between our check and our completion.
  const original = h.db.interpretTaskReport.bind(h.db);
  h.db.interpretTaskReport = async (report) => {
    const reading = await original(report);
    h.db.attempts.get(`${JOB}/1`)!.accepting = false;
    return reading;
  };
  const res = await h.callback(successBody());
  assert.equal(res.status, 200);
  assert.equal(res.body.result, "duplicate");
  assert.deepEqual(h.db.completed, []);
});

// ---------------------------------------------------------------------------------------------
// Refusals: 4xx with a reason, nothing changed
// ---------------------------------------------------------------------------------------------

Deno.test("wrong token: 401, nothing changed", async () => {
  const h = await ready();
  for (const token of ["cb-token-3c1f0a9e8d7b6a5f4e3d2c1c", TOKEN.slice(0, -1), "x"]) {
    const res = await h.callback(successBody(), { token });
    assert.equal(res.status, 401);
    assert.equal(res.body.msg, "invalid callback token");
  }
  assertUntouched(h);
});

Deno.test("a parameter named twice: 400, nothing changed, neither value logged", async () => {
  const h = await ready();
  const twice = [
    `job=${JOB}&attempt=1&token=wrong-token-value-0001&token=${TOKEN}`,
    `job=${JOB}&attempt=1&token=${TOKEN}&token=wrong-token-value-0001`,
    `job=${JOB}&job=${crypto.randomUUID()}&attempt=1&token=${TOKEN}`,
    `job=${JOB}&attempt=1&attempt=2&token=${TOKEN}`,
  ];
  for (const query of twice) {
    const res = await h.send(`/kie-callback?${query}`, {
      method: "POST",
      body: JSON.stringify(successBody()),
    });
    assert.equal(res.status, 400, query);
    assert.match(String(res.body.msg), /names a parameter more than once/);
  }
  const finalize = await h.send(`/kie-callback?job=${JOB}&attempt=1&source=poll&source=poll`, {
    method: "POST",
    headers: { authorization: `Bearer ${FINALIZE_CREDENTIAL}` },
    body: JSON.stringify(successBody()),
  });
  assert.equal(finalize.status, 400);
  assertUntouched(h);
  for (const line of h.logs) {
    assert.ok(!line.includes(TOKEN) && !line.includes("wrong-token-value-0001"), line);
  }
});

Deno.test("unknown job or attempt: the same 401 as a wrong token, after the same hash comparison", async () => {
  const h = await ready();
  const wrongToken = await h.callback(successBody(), { token: "not-the-token" });
  const res = await h.callback(successBody(), { attempt: "2" });
  const q = new URLSearchParams({ job: crypto.randomUUID(), attempt: "1", token: TOKEN });
  const other = await h.send(`/kie-callback?${q}`, { method: "POST", body: JSON.stringify(successBody()) });
  for (const r of [res, other]) {
    assert.equal(r.status, 401);
    assert.deepEqual(r.body, wrongToken.body, "ids do not leak through the answer");
  }
  assertUntouched(h);
});

Deno.test("a success of a task this job never created: not downloaded, not completed, recorded", async () => {
  const h = await ready();
  const res = await h.callback(successBody({ taskId: "not-the-real-task" }));
  assert.equal(res.status, 200);
  assert.deepEqual(res.body, {
    code: 200,
    msg: "the task is not this job's; nothing changed",
    result: "ignored",
  });
  assert.equal(h.web.requested.length, 0, "nothing downloaded");
  assert.equal(h.storage.uploads, 0, "nothing stored");
  assert.deepEqual(h.db.completed, []);
  assert.deepEqual(h.db.foreign, [{ jobId: JOB, attempt: 1, taskId: "not-the-real-task" }]);
});

Deno.test("a second task of the same job (a resent createTask) completes it", async () => {
  const h = harness();
  await h.db.addAttempt({ tasks: [TASK, "second-task-same-attempt"] });
  h.web.serve(URL_A, PNG);
  assert.equal((await h.callback(successBody({ taskId: "second-task-same-attempt" }))).status, 200);
  assert.equal(h.db.completed[0].taskId, "second-task-same-attempt");
});

Deno.test("while the createTask has no known answer, any task id of the attempt completes it", async () => {
  const h = harness();
  await h.db.addAttempt({ tasks: null });
  h.web.serve(URL_A, PNG);
  assert.equal((await h.callback(successBody({ taskId: "a-task-we-never-heard-of" }))).status, 200);
  assert.equal(h.db.completed.length, 1);
});

Deno.test("more results than the job asked for: the job fails at once as unusable, nothing downloaded", async () => {
  const h = harness();
  await h.db.addAttempt({ maxResults: 1 });
  const urls = Array.from({ length: 300 }, (_, i) => `https://tempfile.aiquickdraw.com/f/${i}.png`);
  for (const u of urls) h.web.serve(u, PNG);
  const report = successBody({ resultJson: JSON.stringify({ resultUrls: urls }) });
  const res = await h.callback(report);
  // recordInfo answers the same resultUrls for a finished task every time: no retry can mend it.
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.result, "failure_recorded");
  assert.equal(h.web.requested.length, 0);
  assert.deepEqual(h.db.completed, []);
  assert.equal(h.db.failures.length, 1);
  assert.equal(h.db.failures[0].code, "unusable");
  assert.equal(
    h.db.failures[0].message,
    "the report lists 300 result images, more than the 1 the job asked for",
  );
  assert.equal((await h.callback(report)).body.result, "duplicate");
  // Exactly image_count is fine.
  const two = harness();
  await two.db.addAttempt({ maxResults: 2 });
  two.web.serve(URL_A, PNG);
  two.web.serve(URL_B, JPEG);
  const ok = await two.callback(successBody({ resultJson: JSON.stringify({ resultUrls: [URL_A, URL_B] }) }));
  assert.equal(ok.status, 200);
});

Deno.test("more results than asked for from a task that is not the job's: ignored, the job goes on", async () => {
  const h = harness();
  await h.db.addAttempt({ maxResults: 1 });
  const res = await h.callback(
    successBody({ taskId: "another-task", resultJson: JSON.stringify({ resultUrls: [URL_A, URL_B] }) }),
  );
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.result, "ignored");
  assert.deepEqual(h.db.failures, []);
  assert.equal(h.db.attempts.get(`${JOB}/1`)?.accepting, true);
});

/** The most downloads that ran at once while one delivery of four images was handled. */
async function peakDownloads(h: ReturnType<typeof harness>): Promise<number> {
  await h.db.addAttempt({});
  const urls = [
    URL_A,
    URL_B,
    "https://tempfile.aiquickdraw.com/f/c.png",
    "https://tempfile.aiquickdraw.com/f/d.png",
  ];
  let running = 0;
  let peak = 0;
  for (const u of urls) {
    h.web.routes.set(u, async () => {
      peak = Math.max(peak, ++running);
      await new Promise((r) => setTimeout(r, 5));
      running--;
      return new Response(PNG.slice());
    });
  }
  const res = await h.callback(successBody({ resultJson: JSON.stringify({ resultUrls: urls }) }));
  assert.equal(res.status, 200);
  return peak;
}

Deno.test("downloads run at most two at a time", async () => {
  assert.equal(await peakDownloads(harness()), 2);
  assert.equal(await peakDownloads(harness({ KIE_RESULT_LANES: "" })), 2, "blank means the default");
});

Deno.test("KIE_RESULT_LANES sets the lanes, within 40 MB of images held at once", async () => {
  // Four lanes at a 10 MB cap hold what two hold at the 20 MB default.
  assert.equal(await peakDownloads(harness({ KIE_RESULT_LANES: "4", KIE_RESULT_MAX_BYTES: "10000000" })), 4);
  assert.equal(await peakDownloads(harness({ KIE_RESULT_LANES: "1" })), 1);
  assert.throws(() => harness({ KIE_RESULT_LANES: "3" }), /KIE_RESULT_LANES × KIE_RESULT_MAX_BYTES/);
  assert.throws(() => harness({ KIE_RESULT_LANES: "0" }));
  assert.throws(() => harness({ KIE_RESULT_LANES: "9", KIE_RESULT_MAX_BYTES: "1000" }));
  assert.throws(() => harness({ KIE_RESULT_LANES: "two" }));
});

Deno.test("a delivery holds at most two images that are not stored yet (memory: 4 x 20 MB at the cap)", async () => {
  const h = harness();
  await h.db.addAttempt({});
  const urls = [1, 2, 3, 4].map((n) => `https://tempfile.aiquickdraw.com/f/${n}.png`);
  let held = 0;
  let peak = 0;
  for (const u of urls) {
    h.web.routes.set(u, () => {
      peak = Math.max(peak, ++held);
      return new Response(PNG.slice());
    });
  }
  const upload = h.storage.upload.bind(h.storage);
  h.storage.upload = async (...args) => {
    await upload(...args);
    held--;
  };
  const res = await h.callback(successBody({ resultJson: JSON.stringify({ resultUrls: urls }) }));
  assert.equal(res.body.result, "completed");
  assert.equal(h.db.completed[0].paths.length, 4);
  assert.equal(held, 0);
  assert.ok(peak <= 2, `${peak} images held at once`);
});

Deno.test("deliveries at once share the two lanes: still at most two images held", async () => {
  // Two jobs finishing together, or one result delivered twice (KIE's retry and the finalize
  // request): the function runs them in one process, under one memory limit.
  const h = harness();
  const other = "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b";
  const otherToken = "cb-token-for-the-other-job-0123456789";
  await h.db.addAttempt({});
  await h.db.addAttempt({ jobId: other, token: otherToken });
  const urls = [1, 2, 3, 4].map((n) => `https://tempfile.aiquickdraw.com/f/${n}.png`);
  let held = 0;
  let peak = 0;
  for (const u of urls) {
    h.web.routes.set(u, async () => {
      peak = Math.max(peak, ++held);
      await new Promise((r) => setTimeout(r, 1));
      return new Response(PNG.slice());
    });
  }
  const upload = h.storage.upload.bind(h.storage);
  h.storage.upload = async (...args) => {
    await upload(...args);
    held--;
  };
  const body = successBody({ resultJson: JSON.stringify({ resultUrls: urls }) });
  const q = new URLSearchParams({ job: other, attempt: "1", token: otherToken });
  const answers = await Promise.all([
    h.callback(body),
    h.send(`/kie-callback?${q}`, { method: "POST", body: JSON.stringify(body) }),
  ]);
  assert.deepEqual(answers.map((a) => a.body.result), ["completed", "completed"]);
  assert.equal(held, 0);
  assert.ok(peak <= 2, `${peak} images held at once`);
});

Deno.test("failed deliveries give their lanes back: a later delivery in the same process completes", async () => {
  // The lanes are shared by every delivery a process serves: one kept by a delivery that failed
  // would be gone for every delivery after it.
  const h = harness({ KIE_RESULT_TIMEOUT_MS: "50" });
  await h.db.addAttempt({});
  const urls = [1, 2, 3, 4].map((n) => `https://tempfile.aiquickdraw.com/f/${n}.png`);
  const body = successBody({ resultJson: JSON.stringify({ resultUrls: urls }) });
  const serveAll = () => urls.forEach((u) => h.web.serve(u, PNG));

  // A result host that refuses the connection (the fetch rejects).
  serveAll();
  h.web.routes.delete(urls[1]);
  let res = await h.callback(body);
  assert.equal(res.status, 502, JSON.stringify(res.body));

  // Storage failing an upload (it throws).
  serveAll();
  h.storage.failOnUpload = h.storage.uploads + 1;
  res = await h.callback(body);
  assert.equal(res.status, 503, JSON.stringify(res.body));

  // A result host that never answers: the download times out.
  serveAll();
  h.web.routes.set(
    urls[0],
    (init) =>
      new Promise<Response>((_, reject) =>
        init?.signal?.addEventListener("abort", () => reject(init.signal!.reason))
      ),
  );
  res = await h.callback(body);
  assert.equal(res.status, 502, JSON.stringify(res.body));
  assert.match(h.logs.join("\n"), /timed out after 50 ms/);

  // Both lanes are free: the next delivery downloads two at a time again, and completes.
  let running = 0;
  let peak = 0;
  for (const u of urls) {
    h.web.routes.set(u, async () => {
      peak = Math.max(peak, ++running);
      await new Promise((r) => setTimeout(r, 5));
      running--;
      return new Response(PNG.slice());
    });
  }
  res = await h.callback(body);
  assert.equal(res.body.result, "completed", JSON.stringify(res.body));
  assert.equal(h.db.completed[0].paths.length, 4);
  assert.equal(peak, 2, "two downloads at once");
});

// ---------------------------------------------------------------------------------------------
// The wait for a lane: bounded (KIE_RESULT_LANE_WAIT_MS), and over when the sender hangs up
// ---------------------------------------------------------------------------------------------

const OTHER_JOBS = [
  { jobId: "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b", token: "cb-token-for-the-second-job-0123456789" },
  { jobId: "6a7b8c9d-0e1f-4a2b-9c3d-4e5f6a7b8c9d", token: "cb-token-for-the-third-job-01234567890" },
];
const URL_C = "https://tempfile.aiquickdraw.com/f/c.png";

/**
 * One lane, taken by the default job's delivery, whose result host stalls until `release`; the
 * other jobs' results (URL_B, URL_C) are served at once.
 */
async function laneHeld(env: Record<string, string> = {}) {
  const h = harness({ KIE_RESULT_LANES: "1", ...env });
  await h.db.addAttempt({});
  for (const o of OTHER_JOBS) await h.db.addAttempt(o);
  let release!: () => void;
  const stalled = new Promise<void>((r) => release = r);
  let requested!: () => void;
  const downloading = new Promise<void>((r) => requested = r);
  h.web.routes.set(URL_A, async () => {
    requested();
    await stalled;
    return new Response(PNG.slice());
  });
  h.web.serve(URL_B, JPEG, { "content-type": "image/jpeg" });
  h.web.serve(URL_C, PNG);
  const holder = h.callback(successBody());
  await downloading;
  /** A delivery of job 2 or 3 (URL_B, URL_C), by KIE or, with `finalize`, by the poll path. */
  const deliver = (n: 2 | 3, o: { signal?: AbortSignal; finalize?: boolean } = {}) => {
    const { jobId, token } = OTHER_JOBS[n - 2];
    const body = successBody({ resultJson: JSON.stringify({ resultUrls: [n === 2 ? URL_B : URL_C] }) });
    return o.finalize
      ? h.finalize(body, { job: jobId })
      : h.callback(body, { job: jobId, token, signal: o.signal });
  };
  const accepting = (n: 2 | 3) => h.db.attempts.get(`${OTHER_JOBS[n - 2].jobId}/1`)!.accepting;
  return { h, holder, release, deliver, accepting };
}

Deno.test("no lane within KIE_RESULT_LANE_WAIT_MS: 503 with Retry-After, nothing fetched or stored; the retry gets the lane", async () => {
  const { h, holder, release, deliver, accepting } = await laneHeld();
  assert.equal(h.timers.count, 0, "a delivery that got its lane at once has no wait running");
  const waiting = deliver(2);
  await h.timers.pendingAtLeast(1);
  h.timers.advance(9_999);
  assert.equal(h.timers.count, 1, "still waiting at 9999 ms");
  h.timers.advance(1);
  const gaveUp = await waiting;
  assert.equal(gaveUp.status, 503, JSON.stringify(gaveUp.body));
  assert.equal(gaveUp.body.msg, "too busy to fetch the results now; retry later");
  // The longest a lane stays held: the download timeout (30 s) and the Storage timeout (30 s).
  assert.equal(gaveUp.headers.get("retry-after"), "60");
  assert.match(h.logs.at(-1)!, /"status":503.*no lane of 1 came free within 10000 ms/);
  assert.ok(!h.web.requested.includes(URL_B), "nothing of it was fetched");
  assert.equal(h.storage.uploads, 0, "nothing stored");
  assert.equal(accepting(2), true, "nothing completed: left to KIE's retry and to polling");

  // KIE's retry arrives while the lane is still held: once it is freed, the lane goes to the
  // retry, not to the delivery that gave up.
  const retry = deliver(2);
  await h.timers.pendingAtLeast(1);
  release();
  assert.equal((await holder).body.result, "completed");
  assert.equal((await retry).body.result, "completed");
  assert.equal(h.web.requested.filter((u) => u === URL_B).length, 1, "fetched once, by the retry");
  assert.equal(h.timers.count, 0, "no wait left running");
});

Deno.test("a sender that hangs up while its delivery waits: out of the queue at once; the next live delivery gets the lane", async () => {
  const { h, holder, release, deliver, accepting } = await laneHeld();
  const hangUp = new AbortController();
  const gone = deliver(2, { signal: hangUp.signal });
  await h.timers.pendingAtLeast(1);
  const live = deliver(3, { finalize: true });
  await h.timers.pendingAtLeast(2);
  hangUp.abort();
  const answer = await gone;
  assert.equal(answer.status, 503, "answered while the lane is still held");
  assert.match(h.logs.at(-1)!, /the sender hung up before a lane came free/);
  assert.equal(h.timers.count, 1, "the live delivery still waits");
  release();
  assert.equal((await holder).body.result, "completed");
  assert.equal((await live).body.result, "completed");
  assert.ok(!h.web.requested.includes(URL_B), "the hung-up delivery never ran");
  assert.equal(accepting(2), true);
  assert.equal(h.storage.objects.size, 2, "the two completed jobs' images, nothing else");
  assert.equal(h.timers.count, 0);
});

Deno.test("once its first image has a lane, a delivery does not give up: its other images wait behind it", async () => {
  const h = harness({ KIE_RESULT_LANES: "1" });
  await h.db.addAttempt({});
  let release!: () => void;
  const stalled = new Promise<void>((r) => release = r);
  let requested!: () => void;
  const downloading = new Promise<void>((r) => requested = r);
  h.web.routes.set(URL_A, async () => {
    requested();
    await stalled;
    return new Response(PNG.slice());
  });
  h.web.serve(URL_B, JPEG, { "content-type": "image/jpeg" });
  const res = h.callback(successBody({ resultJson: JSON.stringify({ resultUrls: [URL_A, URL_B] }) }));
  await downloading;
  assert.equal(h.timers.count, 0, "its wait ended when image 1 got the lane");
  h.timers.advance(120_000);
  release();
  assert.equal((await res).body.result, "completed");
  assert.equal(h.db.completed[0].paths.length, 2);
});

Deno.test("KIE_RESULT_LANE_WAIT_MS: 10 s by default (blank too), 1 ms to 120 s, anything else refused at start", async () => {
  for (
    const [setting, ms] of [[undefined, 10_000], ["", 10_000], ["2500", 2_500], ["120000", 120_000]] as const
  ) {
    const { h, holder, release, deliver } = await laneHeld(
      setting === undefined ? {} : { KIE_RESULT_LANE_WAIT_MS: setting },
    );
    // The poll path's finalize request waits under the same bound.
    const waiting = deliver(2, { finalize: true });
    await h.timers.pendingAtLeast(1);
    h.timers.advance(ms - 1);
    assert.equal(h.timers.count, 1, `still waiting at ${ms - 1} ms`);
    h.timers.advance(1);
    assert.equal((await waiting).status, 503);
    assert.match(h.logs.at(-1)!, new RegExp(`within ${ms} ms`));
    release();
    await holder;
  }
  for (const bad of ["0", "-5", "120001", "1.5", "ten"]) {
    assert.throws(() => harness({ KIE_RESULT_LANE_WAIT_MS: bad }), /KIE_RESULT_LANE_WAIT_MS/, bad);
  }
});

Deno.test("a delivery that loses the race deletes what it stored; the winner's images stay", async () => {
  const h = await ready();
  // Two deliveries of the same result at once (KIE's retry and the finalize request).
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  h.web.routes.set(URL_A, async () => {
    await gate;
    return new Response(PNG.slice());
  });
  const first = h.callback(successBody());
  const second = h.callback(successBody());
  await new Promise((r) => setTimeout(r, 5));
  release();
  const answers = (await Promise.all([first, second])).map((r) => r.body.result).sort();
  assert.deepEqual(answers, ["completed", "duplicate"]);
  assert.equal(h.db.completed.length, 1);
  assert.deepEqual(
    [...h.storage.objects.keys()],
    h.db.completed[0].paths,
    "only the completed job's images are left, and no delivery overwrote another's",
  );
});

Deno.test("the job fails (deadline) while the images download: nothing of this delivery is left", async () => {
  const h = await ready();
  h.web.routes.set(URL_A, () => {
    // The deadline tick fails and refunds the job meanwhile.
    h.db.attempts.get(`${JOB}/1`)!.accepting = false;
    return new Response(PNG.slice());
  });
  const res = await h.callback(successBody());
  assert.equal(res.status, 200);
  assert.equal(res.body.result, "duplicate");
  assert.deepEqual(h.db.completed, []);
  assert.equal(h.storage.uploads, 1, "stored before the guarded completion");
  assert.deepEqual([...h.storage.objects.keys()], [], "and deleted when the completion said duplicate");
});

Deno.test("a body with a NUL escape: 400 before any database call", async () => {
  const h = await ready();
  const raw = JSON.stringify(failureBody()).replace('"Content policy violation"', '"a\\u0000b"');
  assert.ok(raw.includes("\\u0000"));
  const res = await h.callback(raw);
  assert.equal(res.status, 400);
  assert.equal(res.body.msg, "body contains a NUL character");
  assert.deepEqual(h.db.reports, []);
  assertUntouched(h);
});

Deno.test("a lone surrogate escape, in a value or a key: 400 before any database call", async () => {
  const h = await ready();
  const text = JSON.stringify(failureBody());
  const cases = [
    text.replace('"Content policy violation"', '"a\\ud83d"'),
    text.replace('"Content policy violation"', '"\\udc00b"'),
    text.replace('"failMsg"', '"\\ud83dfailMsg"'),
  ];
  for (const raw of cases) {
    assert.match(raw, /\\ud[8c]/);
    const res = await h.callback(raw);
    assert.equal(res.status, 400, raw);
    assert.equal(res.body.msg, "body contains an unpaired UTF-16 surrogate");
  }
  assert.deepEqual(h.db.reports, []);
  assertUntouched(h);
  // A pair is one character: read as usual.
  const paired = text.replace('"Content policy violation"', '"\\ud83d\\ude00"');
  assert.equal((await h.callback(paired)).status, 200);
});

Deno.test("a body nested deeper than 64 levels: 400 before any database call", async () => {
  const h = await ready();
  // 200 KB of brackets: valid JSON, and once enough to overflow a recursive walk.
  const res = await h.callback("[".repeat(100_000) + "]".repeat(100_000));
  assert.equal(res.status, 400, JSON.stringify(res.body));
  assert.equal(res.body.msg, "body nested deeper than 64 levels");
  // The limit counts containers: 64 deep is read, 65 is refused.
  const nested = (n: number): unknown => n === 0 ? "x" : [nested(n - 1)];
  const deep = await h.callback(successBody({ extra: nested(63) }));
  assert.equal(deep.status, 400);
  assert.equal(deep.body.msg, "body nested deeper than 64 levels");
  assert.deepEqual(h.db.reports, []);
  assertUntouched(h);
  assert.equal((await h.callback(successBody({ extra: nested(62) }))).status, 200);
});

Deno.test("missing or malformed job, attempt or token (empty, over 512 characters) in the URL: 400", async () => {
  const h = await ready();
  const body = JSON.stringify(successBody());
  for (
    const q of [
      `job=${JOB}&attempt=1`,
      `job=nope&attempt=1&token=${TOKEN}`,
      `job=${JOB}&attempt=0&token=${TOKEN}`,
      `job=${JOB}&attempt=1&token=`,
      `job=${JOB}&attempt=1&token=${"t".repeat(513)}`,
    ]
  ) {
    const res = await h.send(`/kie-callback?${q}`, { method: "POST", body });
    assert.equal(res.status, 400, q);
    assert.match(String(res.body.msg), /needs job/);
  }
  assertUntouched(h);
});

Deno.test("malformed JSON and bodies without a task id: 400, nothing changed", async () => {
  const h = await ready();
  const cases: [string, RegExp][] = [
    ['{"code": 200, ', /not valid JSON/],
    ["", /not valid JSON/],
    ["[1,2]", /not a KIE callback body/],
    [JSON.stringify({ code: 200, data: null }), /data/],
    [JSON.stringify({ ...successBody(), data: withoutTaskId }), /taskId/],
    [JSON.stringify(successBody({ taskId: "   " })), /blank/],
    [JSON.stringify(successBody({ taskId: "x".repeat(65) })), /data.taskId/],
  ];
  for (const [raw, reason] of cases) {
    const res = await h.callback(raw);
    assert.equal(res.status, 400, raw);
    assert.match(String(res.body.msg), reason);
  }
  assertUntouched(h);
});

Deno.test("bodies over 256 KiB: 413 whatever Content-Length says, nothing changed", async () => {
  const h = await ready();
  const padded = JSON.stringify(successBody({ param: "x".repeat(256 * 1024) }));
  const url = `/kie-callback?job=${JOB}&attempt=1&token=${TOKEN}`;
  // Streamed without a length.
  const stream = new Blob([padded]).stream();
  assert.equal((await h.send(url, { method: "POST", body: stream })).status, 413);
  // With a Content-Length that lies.
  const lying = await h.send(url, { method: "POST", body: padded, headers: { "content-length": "100" } });
  assert.equal(lying.status, 413);
  // Declared too large up front.
  const declared = await h.send(url, {
    method: "POST",
    body: "{}",
    headers: { "content-length": "10000000" },
  });
  assert.equal(declared.status, 413);
  assertUntouched(h);
  // Just under the cap is read.
  const fits = JSON.stringify(successBody({ param: "" }));
  const under = JSON.stringify(successBody({ param: "x".repeat(256 * 1024 - fits.length) }));
  assert.equal(new TextEncoder().encode(under).length, 256 * 1024);
  assert.equal((await h.send(url, { method: "POST", body: under })).status, 200);
});

Deno.test("only POST, only our routes", async () => {
  const h = await ready();
  const get = await h.send(`/kie-callback?job=${JOB}&attempt=1&token=${TOKEN}`, { method: "GET" });
  assert.equal(get.status, 405);
  const other = await h.send("/kie-callback/other", { method: "POST", body: "{}" });
  assert.equal(other.status, 404);
  assertUntouched(h);
});

// ---------------------------------------------------------------------------------------------
// Webhook signature (when a key is configured)
// ---------------------------------------------------------------------------------------------

const nowSeconds = Math.floor(NOW_MS / 1000);

async function signed(timestamp: number, key = HMAC_KEY, taskId = TASK) {
  const ts = String(timestamp);
  return { "x-webhook-timestamp": ts, "x-webhook-signature": await sign(key, taskId, ts) };
}

Deno.test("signed callback within the window: accepted", async () => {
  const h = await ready({ KIE_WEBHOOK_HMAC_KEY: HMAC_KEY });
  const res = await h.callback(successBody(), { headers: await signed(nowSeconds - 299) });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(h.db.completed.length, 1);
});

Deno.test("signed callback for task_id bodies signs the same task id", async () => {
  const h = await ready({ KIE_WEBHOOK_HMAC_KEY: HMAC_KEY });
  const body = { ...successBody(), data: { ...withoutTaskId, task_id: TASK } };
  assert.equal((await h.callback(body, { headers: await signed(nowSeconds) })).status, 200);
});

Deno.test("missing, forged, stale or future signatures: 401 with the reason, nothing changed", async () => {
  const h = await ready({ KIE_WEBHOOK_HMAC_KEY: HMAC_KEY });
  const cases: [Record<string, string>, RegExp][] = [
    [{}, /missing X-Webhook-Timestamp/],
    [{ "x-webhook-timestamp": String(nowSeconds) }, /missing X-Webhook-Signature/],
    [await signed(nowSeconds, "another-key-entirely"), /signature mismatch/],
    [await signed(nowSeconds, HMAC_KEY, "another-task"), /signature mismatch/],
    [{ ...(await signed(nowSeconds)), "x-webhook-timestamp": String(nowSeconds + 1) }, /signature mismatch/],
    [await signed(nowSeconds - 301), /too old/],
    [await signed(nowSeconds + 301), /in the future/],
    [await signed(NOW_MS), /milliseconds/],
  ];
  for (const [headers, reason] of cases) {
    const res = await h.callback(successBody(), { headers });
    assert.equal(res.status, 401, JSON.stringify(headers));
    assert.match(String(res.body.msg), reason);
  }
  assertUntouched(h);
});

Deno.test("the replay window is configurable", async () => {
  const h = await ready({ KIE_WEBHOOK_HMAC_KEY: HMAC_KEY, KIE_WEBHOOK_MAX_SKEW_SECONDS: "30" });
  assert.equal((await h.callback(successBody(), { headers: await signed(nowSeconds - 31) })).status, 401);
  assert.equal((await h.callback(successBody(), { headers: await signed(nowSeconds - 29) })).status, 200);
});

Deno.test("an empty replay window setting means unset (300 s), not a window of 0 s", async () => {
  // `supabase secrets set KIE_WEBHOOK_MAX_SKEW_SECONDS=` or an env file line with no value.
  for (const blank of ["", " "]) {
    const h = await ready({ KIE_WEBHOOK_HMAC_KEY: HMAC_KEY, KIE_WEBHOOK_MAX_SKEW_SECONDS: blank });
    const res = await h.callback(successBody(), { headers: await signed(nowSeconds - 20) });
    assert.equal(res.status, 200, JSON.stringify(res.body));
  }
});

Deno.test("a valid signature does not replace the URL token", async () => {
  const h = await ready({ KIE_WEBHOOK_HMAC_KEY: HMAC_KEY });
  const res = await h.callback(successBody(), {
    token: "forged-token-value",
    headers: await signed(nowSeconds),
  });
  assert.equal(res.status, 401);
  assertUntouched(h);
});

Deno.test("without a key configured, signature headers are not required", async () => {
  const h = await ready();
  assert.equal((await h.callback(successBody())).status, 200);
});
