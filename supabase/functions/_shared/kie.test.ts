import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import {
  KIE_ERROR_CODES,
  kieErrorDisposition,
  type KieTaskResult,
  parseKieTaskResult,
  verifyKieSignature,
} from "./kie.ts";

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

const TASK_ID = "3f9a1c2b4d5e6f708192a3b4c5d6e7f8";
const URL_A = "https://tempfile.aiquickdraw.com/f/3f9a1c2b/a.png";
const URL_B = "https://tempfile.aiquickdraw.com/f/3f9a1c2b/b.png";

/** A success callback as documented in §4 (data = recordInfo data, §3). */
function successBody(overrides: Record<string, unknown> = {}, dataOverrides: Record<string, unknown> = {}) {
  return {
    code: 200,
    msg: "Playground task completed successfully.",
    data: {
      taskId: TASK_ID,
      model: "google/imagen4-fast",
      state: "success",
      param: JSON.stringify({ model: "google/imagen4-fast", input: { prompt: "a cat" } }),
      resultJson: JSON.stringify({ resultUrls: [URL_A] }),
      failCode: "",
      failMsg: "",
      costTime: 15,
      createTime: 1757000000000,
      updateTime: 1757000015000,
      completeTime: 1757000015000,
      creditsConsumed: 4,
      ...dataOverrides,
    },
    ...overrides,
  };
}

function failureBody(dataOverrides: Record<string, unknown> = {}) {
  return {
    code: 501,
    msg: "Playground task failed.",
    data: {
      taskId: TASK_ID,
      model: "google/imagen4-fast",
      state: "fail",
      resultJson: "",
      failCode: "500",
      failMsg: "Content policy violation",
      ...dataOverrides,
    },
  };
}

function expectOk<O extends "success" | "failed" | "pending">(
  r: KieTaskResult,
  outcome: O,
): Extract<KieTaskResult, { outcome: O }> {
  assert.equal(r.ok, true, `expected ok, got ${JSON.stringify(r)}`);
  assert.ok(r.ok);
  assert.equal(r.outcome, outcome, `expected ${outcome}, got ${JSON.stringify(r)}`);
  return r as Extract<KieTaskResult, { outcome: O }>;
}

function expectError(r: KieTaskResult): Extract<KieTaskResult, { ok: false }> {
  assert.equal(r.ok, false, `expected an error, got ${JSON.stringify(r)}`);
  return r as Extract<KieTaskResult, { ok: false }>;
}

// ---------------------------------------------------------------------------------------------
// parseKieTaskResult: success
// ---------------------------------------------------------------------------------------------

Deno.test("success callback with msg and taskId", () => {
  const r = expectOk(parseKieTaskResult(successBody()), "success");
  assert.equal(r.taskId, TASK_ID);
  assert.deepEqual(r.resultUrls, [URL_A]);
  assert.equal(r.meta.code, 200);
  assert.equal(r.meta.message, "Playground task completed successfully.");
  assert.equal(r.meta.model, "google/imagen4-fast");
  assert.equal(r.meta.state, "success");
  assert.equal(r.meta.costTime, 15);
  assert.equal(r.meta.completeTime, 1757000015000);
  assert.equal(r.meta.creditsConsumed, 4);
  assert.equal(r.meta.remainedCredits, null);
  assert.equal(typeof r.meta.param, "string");
});

Deno.test("`message` is read when `msg` is absent; `msg` wins when both are present", () => {
  const body = successBody();
  const { msg: _msg, ...withoutMsg } = body;
  const r1 = expectOk(parseKieTaskResult({ ...withoutMsg, message: "from message" }), "success");
  assert.equal(r1.meta.message, "from message");
  const r2 = expectOk(parseKieTaskResult({ ...body, message: "from message" }), "success");
  assert.equal(r2.meta.message, "Playground task completed successfully.");
  const r3 = expectOk(parseKieTaskResult(withoutMsg), "success");
  assert.equal(r3.meta.message, null);
});

Deno.test("task_id is accepted in place of taskId", () => {
  const body = successBody();
  const { taskId: _t, ...data } = body.data;
  const r = expectOk(
    parseKieTaskResult({ ...body, data: { ...data, task_id: "task_imagen4_1757000000000" } }),
    "success",
  );
  assert.equal(r.taskId, "task_imagen4_1757000000000");
});

Deno.test("taskId and task_id that agree are fine; that disagree are an error", () => {
  expectOk(parseKieTaskResult(successBody({}, { task_id: TASK_ID })), "success");
  const e = expectError(parseKieTaskResult(successBody({}, { task_id: "other" })));
  assert.match(e.error, /disagree/);
});

Deno.test("missing, empty or oversized taskId is an error", () => {
  const body = successBody();
  const { taskId: _t, ...data } = body.data;
  assert.match(expectError(parseKieTaskResult({ ...body, data })).error, /taskId is missing/);
  assert.match(expectError(parseKieTaskResult(successBody({}, { taskId: "" }))).error, /taskId is missing/);
  assert.match(
    expectError(parseKieTaskResult(successBody({}, { taskId: "   " }))).error,
    /taskId is missing/,
  );
  assert.match(expectError(parseKieTaskResult(successBody({}, { taskId: 42 }))).error, /taskId/);
  assert.match(expectError(parseKieTaskResult(successBody({}, { taskId: "x".repeat(65) }))).error, /64/);
  expectOk(parseKieTaskResult(successBody({}, { taskId: "x".repeat(64) })), "success");
});

Deno.test("callback without state: code 200 means success", () => {
  const r = expectOk(parseKieTaskResult(successBody({}, { state: undefined })), "success");
  assert.equal(r.meta.state, null);
  expectOk(parseKieTaskResult(successBody({}, { state: null })), "success");
  expectOk(parseKieTaskResult(successBody({}, { state: "" })), "success");
});

Deno.test("state is matched case-insensitively", () => {
  expectOk(parseKieTaskResult(successBody({}, { state: "SUCCESS" })), "success");
  expectOk(parseKieTaskResult(failureBody({ state: " Fail " })), "failed");
});

Deno.test("several result URLs are kept in order, deduplicated, non-http(s) dropped", () => {
  const resultJson = JSON.stringify({
    resultUrls: [URL_A, "data:image/png;base64,AAAA", URL_B, 7, "ftp://x/y.png", URL_A, "not a url"],
  });
  const r = expectOk(parseKieTaskResult(successBody({}, { resultJson })), "success");
  assert.deepEqual(r.resultUrls, [URL_A, URL_B]);
});

Deno.test("plain http URLs are accepted (the local emulator serves http)", () => {
  const url = "http://127.0.0.1:54329/files/abc.png";
  const r = expectOk(
    parseKieTaskResult(successBody({}, { resultJson: JSON.stringify({ resultUrls: [url] }) })),
    "success",
  );
  assert.deepEqual(r.resultUrls, [url]);
});

Deno.test("resultJson already decoded as an object is tolerated", () => {
  const r = expectOk(parseKieTaskResult(successBody({}, { resultJson: { resultUrls: [URL_B] } })), "success");
  assert.deepEqual(r.resultUrls, [URL_B]);
});

Deno.test("numbers sent as strings are read as numbers; junk metadata degrades to null", () => {
  const r = expectOk(
    parseKieTaskResult(
      successBody({ code: "200" }, {
        costTime: "15.5",
        createTime: "1757000000000",
        creditsConsumed: "4",
        remainedCredits: "996",
        updateTime: "soon",
        model: 12,
      }),
    ),
    "success",
  );
  assert.equal(r.meta.code, 200);
  assert.equal(r.meta.costTime, 15.5);
  assert.equal(r.meta.createTime, 1757000000000);
  assert.equal(r.meta.creditsConsumed, 4);
  assert.equal(r.meta.remainedCredits, 996);
  assert.equal(r.meta.updateTime, null);
  assert.equal(r.meta.model, null);
});

Deno.test("older consumeCredits is used when creditsConsumed is absent", () => {
  const r = expectOk(
    parseKieTaskResult(
      successBody({}, { creditsConsumed: undefined, consumeCredits: 6, remainedCredits: 94 }),
    ),
    "success",
  );
  assert.equal(r.meta.creditsConsumed, 6);
  assert.equal(r.meta.remainedCredits, 94);
});

Deno.test("raw JSON text is accepted; unparseable text is an error", () => {
  expectOk(parseKieTaskResult(JSON.stringify(successBody())), "success");
  assert.match(expectError(parseKieTaskResult("{not json")).error, /not valid JSON/);
});

// ---------------------------------------------------------------------------------------------
// parseKieTaskResult: success without a usable result → failed
// ---------------------------------------------------------------------------------------------

for (
  const [label, resultJson, reason] of [
    ["empty string", "", /no http\(s\) result URL/],
    ["null", null, /no http\(s\) result URL/],
    ["absent", undefined, /no http\(s\) result URL/],
    ["empty list", JSON.stringify({ resultUrls: [] }), /no http\(s\) result URL/],
    ["no resultUrls key", JSON.stringify({ urls: [URL_A] }), /no http\(s\) result URL/],
    [
      "only non-http URLs",
      JSON.stringify({ resultUrls: ["data:image/png;base64,AA", "file:///x"] }),
      /no http/,
    ],
    ["malformed JSON", '{"resultUrls": [', /not valid JSON/],
    ["JSON array", JSON.stringify([URL_A]), /not a JSON object/],
  ] as const
) {
  Deno.test(`success with resultJson ${label} → failed, not reported by KIE`, () => {
    const r = expectOk(parseKieTaskResult(successBody({}, { resultJson })), "failed");
    assert.equal(r.reportedByKie, false);
    assert.equal(r.failCode, null);
    assert.match(r.failMessage, /KIE reported success/);
    assert.match(r.failMessage, reason);
  });
}

// ---------------------------------------------------------------------------------------------
// parseKieTaskResult: failure
// ---------------------------------------------------------------------------------------------

Deno.test("code 501 callback → failed with KIE's failCode and failMsg", () => {
  const r = expectOk(parseKieTaskResult(failureBody()), "failed");
  assert.equal(r.taskId, TASK_ID);
  assert.equal(r.failCode, "500");
  assert.equal(r.failMessage, "Content policy violation");
  assert.equal(r.reportedByKie, true);
  assert.equal(r.meta.code, 501);
});

Deno.test("code 501 wins even if state says success", () => {
  const r = expectOk(
    parseKieTaskResult(
      failureBody({ state: "success", resultJson: JSON.stringify({ resultUrls: [URL_A] }) }),
    ),
    "failed",
  );
  assert.equal(r.reportedByKie, true);
});

Deno.test("recordInfo code 200 with state fail → failed", () => {
  const r = expectOk(
    parseKieTaskResult(
      successBody({}, { state: "fail", failCode: "400", failMsg: "moderation", resultJson: "" }),
    ),
    "failed",
  );
  assert.equal(r.failCode, "400");
  assert.equal(r.failMessage, "moderation");
});

Deno.test("failCode may be empty, null, absent or a number", () => {
  assert.equal(expectOk(parseKieTaskResult(failureBody({ failCode: "" })), "failed").failCode, null);
  assert.equal(expectOk(parseKieTaskResult(failureBody({ failCode: null })), "failed").failCode, null);
  assert.equal(expectOk(parseKieTaskResult(failureBody({ failCode: undefined })), "failed").failCode, null);
  assert.equal(expectOk(parseKieTaskResult(failureBody({ failCode: 422 })), "failed").failCode, "422");
});

Deno.test("failure message falls back from failMsg to msg to a default", () => {
  assert.equal(
    expectOk(parseKieTaskResult(failureBody({ failMsg: "" })), "failed").failMessage,
    "Playground task failed.",
  );
  const { msg: _m, ...noMsg } = failureBody({ failMsg: null });
  assert.match(expectOk(parseKieTaskResult(noMsg), "failed").failMessage, /KIE reported the task as failed/);
  assert.equal(
    expectOk(parseKieTaskResult(failureBody({ failMsg: 7 })), "failed").failMessage,
    "Playground task failed.",
  );
});

Deno.test("malformed resultJson does not matter on failure", () => {
  expectOk(parseKieTaskResult(failureBody({ resultJson: "{oops" })), "failed");
});

// ---------------------------------------------------------------------------------------------
// parseKieTaskResult: pending
// ---------------------------------------------------------------------------------------------

for (const state of ["waiting", "queuing", "generating"]) {
  Deno.test(`recordInfo state ${state} → pending`, () => {
    const r = expectOk(
      parseKieTaskResult(successBody({ msg: "success" }, { state, resultJson: "", completeTime: null })),
      "pending",
    );
    assert.equal(r.state, state);
    assert.equal(r.taskId, TASK_ID);
    assert.equal(r.meta.completeTime, null);
  });
}

Deno.test("an undocumented state is pending (only success and fail are terminal)", () => {
  const r = expectOk(parseKieTaskResult(successBody({}, { state: "post_processing" })), "pending");
  assert.equal(r.state, "post_processing");
});

// ---------------------------------------------------------------------------------------------
// parseKieTaskResult: envelope errors
// ---------------------------------------------------------------------------------------------

Deno.test("recordInfo 422 'recordInfo is null' with data null → error carrying the code", () => {
  const e = expectError(parseKieTaskResult({ code: 422, msg: "recordInfo is null", data: null }));
  assert.equal(e.code, 422);
  assert.match(e.error, /422: recordInfo is null/);
});

Deno.test("other envelope codes are errors carrying the code", () => {
  const e = expectError(parseKieTaskResult({ code: 401, message: "You do not have access permissions" }));
  assert.equal(expectError(parseKieTaskResult({ code: "455", msg: 1 })).error, "KIE code 455");
  assert.equal(e.code, 401);
  assert.match(e.error, /401: You do not have access/);
});

Deno.test("code 200 without data is an error", () => {
  assert.match(expectError(parseKieTaskResult({ code: 200, msg: "success" })).error, /no data/);
  assert.match(expectError(parseKieTaskResult({ code: 200, msg: "success", data: null })).error, /no data/);
});

Deno.test("non-object bodies and bad codes are errors", () => {
  for (
    const body of [null, undefined, 42, [], { msg: "no code" }, { code: "abc", data: {} }, { code: 2.5 }]
  ) {
    const e = expectError(parseKieTaskResult(body));
    assert.match(e.error, /invalid KIE body/);
  }
  assert.match(expectError(parseKieTaskResult({ code: 200, data: "x" })).error, /invalid KIE body: data/);
  assert.match(expectError(parseKieTaskResult(successBody({}, { state: 3 }))).error, /data\.state/);
});

// ---------------------------------------------------------------------------------------------
// verifyKieSignature
// ---------------------------------------------------------------------------------------------

const KEY = "whsec_test_6b1f0c";
const NOW = 1_757_000_000;

/** Independent reference implementation (node:crypto), so the test does not mirror kie.ts. */
function sign(key: string, taskId: string, timestamp: string): string {
  return createHmac("sha256", key).update(`${taskId}.${timestamp}`).digest("base64");
}

function check(overrides: Partial<Parameters<typeof verifyKieSignature>[0]> = {}) {
  const timestamp = String(NOW - 5);
  return verifyKieSignature({
    key: KEY,
    taskId: TASK_ID,
    timestamp,
    signature: sign(KEY, TASK_ID, timestamp),
    nowSeconds: NOW,
    ...overrides,
  });
}

async function expectRefused(p: Promise<{ ok: boolean; reason?: string }>, reason: RegExp) {
  const r = await p;
  assert.equal(r.ok, false, "expected the signature to be refused");
  assert.ok(!r.ok);
  assert.match(r.reason ?? "", reason);
}

Deno.test("signature: valid", async () => {
  assert.deepEqual(await check(), { ok: true });
});

Deno.test("signature: matches a hand-computed vector", async () => {
  // printf 'abc.1700000000' | openssl dgst -sha256 -hmac key -binary | base64
  const expected = "DVsH2H8WBYDKcDunI2Eou0AuIWKGHhVnNF1NDjQeZCA=";
  assert.equal(createHmac("sha256", "key").update("abc.1700000000").digest("base64"), expected);
  assert.deepEqual(
    await verifyKieSignature({
      key: "key",
      taskId: "abc",
      timestamp: "1700000000",
      signature: expected,
      nowSeconds: 1700000000,
    }),
    { ok: true },
  );
});

Deno.test("signature: valid at both edges of the window, refused just outside", async () => {
  for (const ts of [NOW - 300, NOW + 300]) {
    const timestamp = String(ts);
    assert.deepEqual(await check({ timestamp, signature: sign(KEY, TASK_ID, timestamp) }), { ok: true });
  }
  const old = String(NOW - 301);
  await expectRefused(check({ timestamp: old, signature: sign(KEY, TASK_ID, old) }), /too old/);
  const future = String(NOW + 301);
  await expectRefused(check({ timestamp: future, signature: sign(KEY, TASK_ID, future) }), /future/);
});

Deno.test("signature: custom maxSkewSeconds", async () => {
  const timestamp = String(NOW - 60);
  const signature = sign(KEY, TASK_ID, timestamp);
  assert.deepEqual(await check({ timestamp, signature, maxSkewSeconds: 60 }), { ok: true });
  await expectRefused(check({ timestamp, signature, maxSkewSeconds: 59 }), /too old/);
});

Deno.test("signature: wrong key", async () => {
  const timestamp = String(NOW);
  await expectRefused(
    check({ timestamp, signature: sign("another-key", TASK_ID, timestamp) }),
    /signature mismatch/,
  );
});

Deno.test("signature: tampered task id", async () => {
  await expectRefused(check({ taskId: TASK_ID.replace(/.$/, "9") }), /signature mismatch/);
});

Deno.test("signature: tampered timestamp (still inside the window)", async () => {
  const signed = String(NOW - 5);
  await expectRefused(
    check({ timestamp: String(NOW - 4), signature: sign(KEY, TASK_ID, signed) }),
    /signature mismatch/,
  );
});

Deno.test("signature: expired timestamp with an otherwise valid signature", async () => {
  const timestamp = String(NOW - 3600);
  await expectRefused(check({ timestamp, signature: sign(KEY, TASK_ID, timestamp) }), /too old/);
});

Deno.test("signature: future timestamp with an otherwise valid signature", async () => {
  const timestamp = String(NOW + 3600);
  await expectRefused(check({ timestamp, signature: sign(KEY, TASK_ID, timestamp) }), /future/);
});

Deno.test("signature: millisecond timestamp is refused with a hint", async () => {
  const timestamp = String(NOW * 1000);
  await expectRefused(check({ timestamp, signature: sign(KEY, TASK_ID, timestamp) }), /milliseconds/);
});

Deno.test("signature: non-numeric timestamps", async () => {
  for (
    const timestamp of ["abc", "1.7e9", "-1757000000", " 1757000000", "1757000000.5", "0x68b", "１７５７"]
  ) {
    await expectRefused(check({ timestamp, signature: sign(KEY, TASK_ID, timestamp) }), /not Unix seconds/);
  }
});

Deno.test("signature: malformed base64", async () => {
  for (const signature of ["not base64!", "abc", "====", "YWJj=ZA==", "%%%%"]) {
    await expectRefused(check({ signature }), /not valid base64/);
  }
});

Deno.test("signature: well-formed base64 of the wrong length or bytes", async () => {
  const good = sign(KEY, TASK_ID, String(NOW - 5));
  const bytes = Uint8Array.from(atob(good), (c) => c.charCodeAt(0));
  await expectRefused(check({ signature: btoa(String.fromCharCode(...bytes.slice(0, 31))) }), /mismatch/);
  await expectRefused(check({ signature: btoa(String.fromCharCode(...bytes, 0)) }), /mismatch/);
  bytes[31] ^= 1;
  await expectRefused(check({ signature: btoa(String.fromCharCode(...bytes)) }), /mismatch/);
  // Hex of the right HMAC is not what KIE documents.
  const hex = createHmac("sha256", KEY).update(`${TASK_ID}.${NOW - 5}`).digest("hex");
  await expectRefused(check({ signature: hex }), /mismatch|base64/);
});

Deno.test("signature: missing pieces", async () => {
  await expectRefused(check({ signature: null }), /missing X-Webhook-Signature/);
  await expectRefused(check({ signature: "" }), /missing X-Webhook-Signature/);
  await expectRefused(check({ timestamp: null }), /missing X-Webhook-Timestamp/);
  await expectRefused(check({ timestamp: undefined }), /missing X-Webhook-Timestamp/);
  await expectRefused(check({ taskId: null }), /missing task id/);
  await expectRefused(check({ taskId: "" }), /missing task id/);
  await expectRefused(check({ key: "" }), /no webhook key/);
});

Deno.test("signature: a non-finite clock is refused", async () => {
  await expectRefused(check({ nowSeconds: Number.NaN }), /clock/);
});

Deno.test("signature: parsed body task id verifies against the header", async () => {
  // The receiver's flow: parse the body, then verify with the body's task id.
  const parsed = parseKieTaskResult(successBody());
  assert.ok(parsed.ok);
  const timestamp = String(NOW);
  assert.deepEqual(
    await verifyKieSignature({
      key: KEY,
      taskId: parsed.taskId,
      timestamp,
      signature: sign(KEY, TASK_ID, timestamp),
      nowSeconds: NOW,
    }),
    { ok: true },
  );
});

// ---------------------------------------------------------------------------------------------
// kieErrorDisposition (§6)
// ---------------------------------------------------------------------------------------------

Deno.test("disposition of every documented code", () => {
  const expected: Record<number, [string, boolean]> = {
    200: ["ok", false],
    400: ["permanent", false],
    401: ["permanent", true],
    402: ["hold", true],
    404: ["permanent", false],
    422: ["permanent", false],
    429: ["transient", false],
    433: ["hold", true],
    455: ["transient", false],
    500: ["transient", false],
    501: ["terminal", false],
    505: ["permanent", false],
  };
  assert.deepEqual(Object.keys(KIE_ERROR_CODES).map(Number).sort(), Object.keys(expected).map(Number).sort());
  for (const [code, [kind, alert]] of Object.entries(expected)) {
    const d = kieErrorDisposition(Number(code));
    assert.equal(d.kind, kind, `code ${code}`);
    assert.equal(d.operatorAlert, alert, `code ${code} alert`);
    assert.ok(d.reason.length > 0);
  }
});

Deno.test("disposition: 422 depends on the operation", () => {
  assert.equal(kieErrorDisposition(422).kind, "permanent");
  assert.equal(kieErrorDisposition(422, "createTask").kind, "permanent");
  const d = kieErrorDisposition(422, "recordInfo");
  assert.equal(d.kind, "transient");
  assert.match(d.reason, /grace period/);
  // The operation only matters for 422.
  assert.deepEqual(kieErrorDisposition(402, "recordInfo"), kieErrorDisposition(402, "createTask"));
});

Deno.test("disposition: undocumented codes", () => {
  assert.equal(kieErrorDisposition(503).kind, "transient");
  assert.equal(kieErrorDisposition(599).kind, "transient");
  assert.equal(kieErrorDisposition(418).kind, "permanent");
  assert.equal(kieErrorDisposition(0).kind, "permanent");
  assert.match(kieErrorDisposition(418).reason, /418/);
});

Deno.test("disposition table is frozen", () => {
  assert.ok(Object.isFrozen(KIE_ERROR_CODES));
});
