// Nothing the function logs or answers contains the callback token, the service key, the
// finalize credential or the webhook key: every path, logs captured.
import assert from "node:assert/strict";
import {
  failureBody,
  FINALIZE_CREDENTIAL,
  harness,
  HMAC_KEY,
  JOB,
  NOW_MS,
  PNG,
  SERVICE_KEY,
  sign,
  successBody,
  TASK,
  TOKEN,
  URL_A,
} from "./fakes.ts";
import { redactDeep } from "../_shared/secrets.ts";

const SECRETS = [TOKEN, SERVICE_KEY, FINALIZE_CREDENTIAL, HMAC_KEY];

Deno.test("no token or key in any log line or response, on any path", async () => {
  const h = harness({ KIE_WEBHOOK_HMAC_KEY: HMAC_KEY });
  await h.db.addAttempt({});
  h.web.serve(URL_A, PNG);
  const ts = String(Math.floor(NOW_MS / 1000));
  const good = { "x-webhook-timestamp": ts, "x-webhook-signature": await sign(HMAC_KEY, TASK, ts) };
  const other = { "x-webhook-timestamp": ts, "x-webhook-signature": await sign(HMAC_KEY, "x", ts) };

  await h.callback(successBody()); // missing signature
  await h.callback(successBody(), { headers: other }); // signature for another task
  await h.callback("{broken", { headers: good });
  await h.callback(successBody(), { token: `${TOKEN}-wrong`, headers: good });
  await h.finalize(successBody(), { key: `${FINALIZE_CREDENTIAL}-wrong` });
  await h.finalize(successBody());
  await h.finalize(failureBody()); // duplicate
  // Errors from dependencies are logged: even if they quote a secret, it is redacted.
  h.db.broken = new Error(`auth failed for ${SERVICE_KEY} while handling token=${TOKEN} with ${HMAC_KEY}`);
  await h.callback(successBody(), { headers: good });
  // A finalize request knows no callback token; the function's own keys are still redacted.
  h.db.broken = new Error(`auth failed for ${SERVICE_KEY} with ${FINALIZE_CREDENTIAL} and ${HMAC_KEY}`);
  await h.finalize(successBody());

  assert.ok(h.logs.length >= 9, "every request is logged");
  assert.ok(h.logs.some((l) => l.includes("[redacted]")), "the dependency error was logged, redacted");
  for (const text of [...h.logs, ...h.responses]) {
    for (const secret of SECRETS) assert.ok(!text.includes(secret), `leaked in: ${text}`);
  }
});

Deno.test("a failed clean-up is logged redacted, like every other line", async () => {
  const h = harness();
  await h.db.addAttempt({});
  // The job finishes elsewhere while the image downloads: this delivery's image must go again.
  h.web.routes.set(URL_A, () => {
    h.db.attempts.get(`${JOB}/1`)!.accepting = false;
    return new Response(PNG.slice());
  });
  h.storage.remove = () =>
    Promise.reject(new Error(`delete refused for ${SERVICE_KEY} (token=${TOKEN}, ${FINALIZE_CREDENTIAL})`));

  const res = await h.callback(successBody());

  assert.equal(res.body.result, "duplicate");
  const cleanup = h.logs.filter((l) => l.includes('"cleanup"'));
  assert.equal(cleanup.length, 1, "the failed delete is logged");
  assert.ok(cleanup[0].includes("[redacted]"), cleanup[0]);
  for (const text of [...h.logs, ...h.responses]) {
    for (const secret of SECRETS) assert.ok(!text.includes(secret), `leaked in: ${text}`);
  }
});

// Anyone may put a token in the URL, and every occurrence of it is redacted: it must hide only
// what it matches inside a value, never the line's structure or the fields the function writes.
Deno.test("a token that spells part of the log line neither breaks the line nor hides its fields", async () => {
  const h = harness();
  await h.db.addAttempt({});
  const tokens = ['"status":401', "kie-callback", "callback", '","msg":"invalid callback token"}'];
  for (const token of tokens) {
    assert.equal((await h.callback(successBody(), { token })).status, 401);
    const q = new URLSearchParams({ token });
    assert.equal((await h.send(`/elsewhere?${q}`, { method: "POST", body: "{}" })).status, 404);
  }
  assert.equal(h.logs.length, tokens.length * 2);
  for (const [i, line] of h.logs.entries()) {
    const fields = JSON.parse(line);
    assert.equal(fields.fn, "kie-callback", line);
    assert.equal(fields.route, i % 2 === 0 ? "callback" : null, line);
    assert.equal(fields.status, i % 2 === 0 ? 401 : 404, line);
  }
  for (const text of h.responses) assert.equal(typeof JSON.parse(text).code, "number", text);
});

Deno.test("a key with characters JSON escapes is redacted too", async () => {
  const key = 'whk-"quoted"\\and\\slashed-0123';
  const h = harness({ KIE_WEBHOOK_HMAC_KEY: key });
  await h.db.addAttempt({});
  h.db.broken = new Error(`auth failed with ${key}`);
  const ts = String(Math.floor(NOW_MS / 1000));
  const headers = { "x-webhook-timestamp": ts, "x-webhook-signature": await sign(key, TASK, ts) };
  assert.equal((await h.callback(successBody(), { headers })).status, 503);
  const escaped = JSON.stringify(key).slice(1, -1);
  assert.ok(h.logs.some((l) => l.includes("[redacted]")), h.logs.join("\n"));
  for (const line of h.logs) {
    assert.ok(!line.includes(escaped), `leaked in: ${line}`);
    assert.ok(!JSON.stringify(JSON.parse(line)).includes(escaped));
  }
});

Deno.test("a secret inside a logged object or array is redacted as it is, before JSON escapes it", () => {
  const key = 'k"e\\y-0123456789';
  const line = JSON.stringify(
    redactDeep({
      error: { cause: [`bad key ${key}`] },
      where: new URL(`https://example.com/?k=${key}`),
      count: 2,
    }, [key]),
  );
  assert.ok(!line.includes(JSON.stringify(key).slice(1, -1)), line);
  assert.deepEqual(JSON.parse(line), {
    error: { cause: ["bad key [redacted]"] },
    where: "https://example.com/?k=k%22e\\y-0123456789",
    count: 2,
  });
});
