// The finalize request Postgres sends when polling found the result before the callback did.
import assert from "node:assert/strict";
import { failureBody, harness, JOB, PNG, SERVICE_KEY, successBody, TASK, URL_A, USER } from "./fakes.ts";

async function ready() {
  const h = harness();
  await h.db.addAttempt({});
  h.web.serve(URL_A, PNG);
  return h;
}

Deno.test("finalize with recordInfo data: images stored, job completed", async () => {
  const h = await ready();
  const res = await h.finalize({ job_id: JOB, attempt: 1, report: successBody().data });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.result, "completed");
  assert.deepEqual(h.db.completed, [{
    jobId: JOB,
    attempt: 1,
    taskId: TASK,
    paths: [`generated-images/${USER}/${JOB}/0.png`],
  }]);
  // The database reads it as the recordInfo reply it came from.
  assert.deepEqual(h.db.reports, [{
    code: 200,
    msg: "success",
    data: JSON.parse(JSON.stringify(successBody().data)),
  }]);
});

Deno.test("finalize with a whole recordInfo reply, attempt as a string", async () => {
  const h = await ready();
  const res = await h.finalize({ job_id: JOB, attempt: "1", report: successBody() });
  assert.equal(res.status, 200);
  assert.deepEqual(h.db.reports, [JSON.parse(JSON.stringify(successBody()))]);
});

Deno.test("finalize of a failed task records the failure", async () => {
  const h = await ready();
  const res = await h.finalize({ job_id: JOB, attempt: 1, report: failureBody().data });
  assert.equal(res.status, 200);
  assert.equal(res.body.result, "failure_recorded");
  assert.equal(h.db.failures.length, 1);
});

Deno.test("finalize then KIE's callback: the callback is a duplicate", async () => {
  const h = await ready();
  await h.finalize({ job_id: JOB, attempt: 1, report: successBody().data });
  const late = await h.callback(successBody());
  assert.equal(late.status, 200);
  assert.equal(late.body.result, "duplicate");
  assert.equal(h.web.requested.length, 1);
});

Deno.test("finalize without the service credential: 401, nothing changed", async () => {
  const h = await ready();
  const body = { job_id: JOB, attempt: 1, report: successBody().data };
  for (const key of ["", "wrong", SERVICE_KEY.slice(0, -1), `${SERVICE_KEY}x`]) {
    const res = await h.finalize(body, key);
    assert.equal(res.status, 401, key);
    assert.equal(res.body.msg, "finalize needs the service credential");
  }
  const none = await h.send("/kie-callback/finalize", { method: "POST", body: JSON.stringify(body) });
  assert.equal(none.status, 401);
  // The callback token is not a credential for finalize.
  assert.equal(h.web.requested.length, 0);
  assert.deepEqual(h.db.completed, []);
  assert.deepEqual(h.db.reports, []);
});

Deno.test("finalize refuses malformed requests and unknown jobs with a reason", async () => {
  const h = await ready();
  const cases: [unknown, number, RegExp][] = [
    [{ attempt: 1, report: successBody().data }, 400, /job_id/],
    [{ job_id: JOB, attempt: 0, report: successBody().data }, 400, /attempt/],
    [{ job_id: JOB, attempt: 1, report: "x" }, 400, /report/],
    [{ job_id: JOB, attempt: 1, report: { state: "success" } }, 400, /taskId/],
    [{ job_id: JOB, attempt: 2, report: successBody().data }, 404, /unknown job or attempt/],
  ];
  for (const [body, status, reason] of cases) {
    const res = await h.finalize(body);
    assert.equal(res.status, status, JSON.stringify(body));
    assert.match(String(res.body.msg), reason);
  }
  assert.deepEqual(h.db.completed, []);
  assert.equal(h.web.requested.length, 0);
});

Deno.test("finalize with job and attempt in the URL (source=poll), the body being the recordInfo reply", async () => {
  const h = await ready();
  const q = new URLSearchParams({ job: JOB, attempt: "1", source: "poll" });
  const send = (key: string) =>
    h.send(`/kie-callback?${q}`, {
      method: "POST",
      body: JSON.stringify(successBody()),
      headers: { authorization: `Bearer ${key}` },
    });
  const refused = await send("not-the-service-key");
  assert.equal(refused.status, 401);
  assert.equal(h.web.requested.length, 0);
  const res = await send(SERVICE_KEY);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.result, "completed");
  assert.deepEqual(h.db.reports, [JSON.parse(JSON.stringify(successBody()))]);
  const unknown = new URLSearchParams({ job: JOB, attempt: "2", source: "poll" });
  const missing = await h.send(`/kie-callback?${unknown}`, {
    method: "POST",
    body: JSON.stringify(successBody()),
    headers: { authorization: `Bearer ${SERVICE_KEY}` },
  });
  assert.equal(missing.status, 404);
});
