// The finalize request Postgres sends when polling found the result before the callback did:
// POST /kie-callback?job=&attempt=&source=poll, Bearer <finalize credential>, the recordInfo reply.
import assert from "node:assert/strict";
import {
  DELIVERY,
  failureBody,
  FINALIZE_CREDENTIAL,
  harness,
  JOB,
  PNG,
  SERVICE_KEY,
  successBody,
  TASK,
  TOKEN,
  URL_A,
  USER,
} from "./fakes.ts";

async function ready(env: Record<string, string> = {}) {
  const h = harness(env);
  await h.db.addAttempt({});
  h.web.serve(URL_A, PNG);
  return h;
}

Deno.test("finalize with the recordInfo reply: images stored, job completed", async () => {
  const h = await ready();
  const res = await h.finalize(successBody());
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.result, "completed");
  assert.deepEqual(h.db.completed, [{
    jobId: JOB,
    attempt: 1,
    taskId: TASK,
    paths: [`generated-images/${USER}/${JOB}/${DELIVERY}/0.png`],
  }]);
  // The database reads the reply exactly as Postgres forwarded it.
  assert.deepEqual(h.db.reports, [JSON.parse(JSON.stringify(successBody()))]);
});

Deno.test("finalize of a failed task records the failure", async () => {
  const h = await ready();
  const res = await h.finalize(failureBody());
  assert.equal(res.status, 200);
  assert.equal(res.body.result, "failure_recorded");
  assert.equal(h.db.failures.length, 1);
});

Deno.test("finalize then KIE's callback: the callback is a duplicate", async () => {
  const h = await ready();
  await h.finalize(successBody());
  const late = await h.callback(successBody());
  assert.equal(late.status, 200);
  assert.equal(late.body.result, "duplicate");
  assert.equal(h.web.requested.length, 1);
});

Deno.test("finalize without the finalize credential: 401, nothing changed", async () => {
  const h = await ready();
  // The service key and the callback token are not the finalize credential.
  for (
    const key of [
      "",
      "wrong",
      FINALIZE_CREDENTIAL.slice(0, -1),
      `${FINALIZE_CREDENTIAL}x`,
      SERVICE_KEY,
      TOKEN,
    ]
  ) {
    const res = await h.finalize(successBody(), { key });
    assert.equal(res.status, 401, key);
    assert.equal(res.body.msg, "finalize needs the finalize credential");
  }
  const q = new URLSearchParams({ job: JOB, attempt: "1", source: "poll" });
  const none = await h.send(`/kie-callback?${q}`, { method: "POST", body: JSON.stringify(successBody()) });
  assert.equal(none.status, 401);
  assert.equal(h.web.requested.length, 0);
  assert.deepEqual(h.db.completed, []);
  assert.deepEqual(h.db.reports, []);
});

Deno.test("finalize is refused (503, retried later) while the function has no credential configured", async () => {
  const h = await ready({ KILN_FINALIZE_CREDENTIAL: "" });
  const res = await h.finalize(successBody(), { key: "" });
  assert.equal(res.status, 503);
  assert.match(String(res.body.msg), /KILN_FINALIZE_CREDENTIAL is not set/);
  assert.deepEqual(h.db.reports, []);
});

Deno.test("finalize refuses malformed requests and unknown jobs with a reason", async () => {
  const h = await ready();
  const cases: [{ job?: string; attempt?: string }, unknown, number, RegExp][] = [
    [{ job: "nope" }, successBody(), 400, /job \(uuid\)/],
    [{ attempt: "0" }, successBody(), 400, /attempt/],
    [{}, "{not json", 400, /not valid JSON/],
    [{}, { code: 200, data: { state: "success" } }, 400, /taskId/],
    [{ attempt: "2" }, successBody(), 404, /unknown job or attempt/],
  ];
  for (const [where, body, status, reason] of cases) {
    const res = await h.finalize(body, where);
    assert.equal(res.status, status, JSON.stringify({ where, body }));
    assert.match(String(res.body.msg), reason);
  }
  assert.deepEqual(h.db.completed, []);
  assert.equal(h.web.requested.length, 0);
});
