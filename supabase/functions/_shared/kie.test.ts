import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { verifyKieSignature } from "./kie.ts";

const TASK_ID = "3f9a1c2b4d5e6f708192a3b4c5d6e7f8";

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
