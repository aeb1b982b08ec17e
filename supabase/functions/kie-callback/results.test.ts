// Moving the result bytes: downloads that go wrong, Storage failing midway, the database down.
// Each that a later delivery may mend leaves the job uncompleted and answers non-2xx, so the
// sender retries; bytes that are no image at all, only until the database's grace for them ends.
// A result no retry can store (a result URL off the accepted hosts, over the bucket's size limit,
// an image of another type, or refused by Storage for what it is) fails the job at once with the
// provider outcome "unusable", answered 200.
import assert from "node:assert/strict";
import { ObjectRefused } from "../_shared/storage.ts";
import { harness, JOB, JPEG, PNG, successBody, URL_A, URL_B, USER } from "./fakes.ts";

const TWO = successBody({ resultJson: JSON.stringify({ resultUrls: [URL_A, URL_B] }) });

async function ready(env: Record<string, string> = {}) {
  const h = harness({ KIE_RESULT_MAX_BYTES: "1000", KIE_RESULT_TIMEOUT_MS: "50", ...env });
  await h.db.addAttempt({});
  h.web.serve(URL_A, PNG);
  return h;
}

function assertNotCompleted(h: Awaited<ReturnType<typeof ready>>) {
  assert.deepEqual(h.db.completed, []);
  assert.deepEqual(h.db.failures, []);
  assert.equal(h.db.attempts.get(`${JOB}/1`)?.accepting, true, "the job stays with the poll path");
}

const bigPng = () => {
  const bytes = new Uint8Array(1001);
  bytes.set(PNG);
  return bytes;
};

function assertFailedUnusable(
  h: Awaited<ReturnType<typeof ready>>,
  res: { status: number; body: Record<string, unknown> },
  reason: RegExp,
) {
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.result, "failure_recorded");
  assert.deepEqual(h.db.completed, []);
  assert.equal(h.db.failures.length, 1);
  assert.equal(h.db.failures[0].code, "unusable");
  assert.match(h.db.failures[0].message, reason, "the reason goes to the job's private last_error");
  assert.equal(h.storage.objects.size, 0, "nothing of the delivery stays stored");
}

const tooLarge: [string, (h: Awaited<ReturnType<typeof ready>>) => void][] = [
  ["no Content-Length", (h) => h.web.routes.set(URL_B, () => new Response(new Blob([bigPng()]).stream()))],
  [
    "declared",
    (h) =>
      h.web.routes.set(URL_B, () => new Response(PNG.slice(), { headers: { "content-length": "5000000" } })),
  ],
];

for (const [name, arrange] of tooLarge) {
  Deno.test(`an image over the size cap (${name}): the job fails at once as unusable, answered 200`, async () => {
    const h = await ready();
    arrange(h);
    const res = await h.callback(TWO);
    assertFailedUnusable(h, res, /result image 2 of 2 cannot be stored: larger than 1000 bytes/);
    // A repeated delivery finds the attempt finished.
    assert.equal((await h.callback(TWO)).body.result, "duplicate");
  });
}

const ascii = (text: string) => new TextEncoder().encode(text);
/** An ISO media file's first box: size, "ftyp", the major brand. */
const ftyp = (brand: string) => new Uint8Array([0, 0, 0, 0x1c, ...ascii(`ftyp${brand}`), 0, 0, 0, 0]);

// An image of a type the bucket does not take stays that type on every delivery (recordInfo answers
// the same resultUrls for a finished task): no retry can store it, so the job fails at once.
const otherFormats: [string, Uint8Array, string][] = [
  ["GIF", ascii("GIF89a\x01\x00\x01\x00"), "GIF"],
  ["TIFF (little-endian)", new Uint8Array([0x49, 0x49, 0x2a, 0x00, 8, 0, 0, 0]), "TIFF"],
  ["TIFF (big-endian)", new Uint8Array([0x4d, 0x4d, 0x00, 0x2a, 0, 0, 0, 8]), "TIFF"],
  ["AVIF", ftyp("avif"), "AVIF"],
  ["HEIC", ftyp("heic"), "HEIC"],
];

for (const [name, bytes, format] of otherFormats) {
  Deno.test(`a result that is a ${name} image: the job fails at once as unusable, answered 200`, async () => {
    const h = await ready();
    h.web.serve(URL_B, bytes, { "content-type": "image/png" });
    const res = await h.callback(TWO);
    assertFailedUnusable(
      h,
      res,
      new RegExp(`result image 2 of 2 cannot be stored: a ${format} image, not PNG, JPEG or WebP`),
    );
    assert.equal((await h.callback(TWO)).body.result, "duplicate");
  });
}

// The last column: whether the delivery is handed to the database as one that found no image
// (private.callback_non_image counts those, and fails the job once they outlast its grace).
const failures: [string, (h: Awaited<ReturnType<typeof ready>>) => void, RegExp, boolean][] = [
  [
    "not an image though labelled one",
    (h) => {
      h.web.serve(URL_B, new TextEncoder().encode("<html>expired</html>"), { "content-type": "image/jpeg" });
    },
    /not a PNG, JPEG or WebP image/,
    true,
  ],
  // A result host's error page served with 200 is not the result: the next delivery may get it.
  [
    "an HTML page served with 200",
    (h) => {
      h.web.serve(URL_B, ascii("<!DOCTYPE html><title>502 Bad Gateway</title>"), {
        "content-type": "text/html",
      });
    },
    /not a PNG, JPEG or WebP image/,
    true,
  ],
  ["an empty body", (h) => h.web.serve(URL_B, new Uint8Array()), /not a PNG, JPEG or WebP/, true],
  [
    "HTTP 404 (expired link)",
    (h) => {
      h.web.routes.set(URL_B, () => new Response("gone", { status: 404 }));
    },
    /HTTP 404/,
    false,
  ],
  ["unreachable host", () => {}, /unreachable/, false],
  [
    "no answer within the timeout",
    (h) => {
      h.web.routes.set(URL_B, (init) =>
        new Promise((_, reject) => {
          init?.signal?.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError")));
        }));
    },
    /timed out after 50 ms/,
    false,
  ],
  [
    "a body that stalls within the timeout",
    (h) => {
      h.web.routes.set(URL_B, (init) => {
        const body = new ReadableStream<Uint8Array>({
          start(c) {
            c.enqueue(JPEG.slice(0, 4));
            init?.signal?.addEventListener("abort", () => c.error(new DOMException("aborted", "AbortError")));
          },
        });
        return new Response(body);
      });
    },
    /timed out after 50 ms/,
    false,
  ],
];

for (const [name, arrange, reason, notImage] of failures) {
  Deno.test(`download ${name}: 502, nothing stored, job not completed`, async () => {
    const h = await ready();
    arrange(h);
    const res = await h.callback(TWO);
    assert.equal(res.status, 502, JSON.stringify(res.body));
    // The sender learns only which image; why is for the log (no probe of the network).
    assert.equal(res.body.msg, "result image 2 of 2 could not be fetched");
    assert.match(h.logs.join("\n"), reason);
    assert.equal(h.storage.objects.size, 0, "what the failed delivery stored is deleted");
    assertNotCompleted(h);
    assert.deepEqual(
      h.db.nonImage.map((d) => d.reason),
      notImage ? ["result image 2 of 2 cannot be stored: not a PNG, JPEG or WebP image"] : [],
    );
  });
}

// A host that keeps answering its error page instead of the image: each delivery is retried (502)
// while the database's grace lasts, counted from the first that found no image; a delivery after it
// fails the job as unusable. Time is the fake database's clock, moved by the test.
const errorPage = (h: Awaited<ReturnType<typeof ready>>) =>
  h.web.serve(URL_B, ascii("<!DOCTYPE html><title>Service Unavailable</title>"), {
    "content-type": "text/html",
  });

const paths = [
  ["callback", (h: Awaited<ReturnType<typeof ready>>) => h.callback(TWO)],
  ["finalize", (h: Awaited<ReturnType<typeof ready>>) => h.finalize(TWO)],
] as const;

for (const [path, deliver] of paths) {
  Deno.test(`no image on every ${path} delivery: retried within the grace, then the job fails as unusable`, async () => {
    const h = await ready();
    errorPage(h);
    assert.equal((await deliver(h)).status, 502, "the first delivery starts the clock");
    h.db.clockMs += h.db.nonImageGraceMs - 1;
    assert.equal((await deliver(h)).status, 502, "one within the grace is retried");
    assertNotCompleted(h);
    h.db.clockMs += 1;
    const res = await deliver(h);
    assertFailedUnusable(h, res, /^result image 2 of 2 cannot be stored: not a PNG, JPEG or WebP image$/);
    assert.equal(h.db.nonImage.length, 3, "every delivery that found no image was handed to the database");
    assert.equal((await deliver(h)).body.result, "duplicate", "a later delivery finds the attempt finished");
  });
}

Deno.test("no image, then the image: a passing error page leaves the job to complete", async () => {
  const h = await ready();
  errorPage(h);
  assert.equal((await h.callback(TWO)).status, 502);
  h.db.clockMs += h.db.nonImageGraceMs * 2;
  h.web.serve(URL_B, JPEG, { "content-type": "image/jpeg" });
  assert.equal((await h.callback(TWO)).body.result, "completed");
  assert.deepEqual(h.db.failures, []);
});

Deno.test("the database failing to count a delivery that found no image: 503, nothing stored", async () => {
  const h = await ready();
  errorPage(h);
  h.db.recordNonImage = () => Promise.reject(new Error("connect ECONNREFUSED 127.0.0.1:5432"));
  const res = await h.callback(TWO);
  assert.equal(res.status, 503);
  assert.equal(h.storage.objects.size, 0);
  assertNotCompleted(h);
});

Deno.test("after a failed download the delivery fetches and stores nothing more", async () => {
  const h = await ready();
  const urls = [1, 2, 3, 4].map((n) => `https://tempfile.aiquickdraw.com/f/${n}.png`);
  // Image 1's host refuses the connection; the others would serve.
  for (const u of urls.slice(1)) h.web.serve(u, PNG);
  const res = await h.callback(successBody({ resultJson: JSON.stringify({ resultUrls: urls }) }));
  assert.equal(res.status, 502);
  assert.equal(res.body.msg, "result image 1 of 4 could not be fetched");
  assert.ok(!h.web.requested.includes(urls[2]) && !h.web.requested.includes(urls[3]), h.web.requested.join());
  assert.equal(h.storage.objects.size, 0, "what the other lane stored is deleted");
  assertNotCompleted(h);
});

Deno.test("an image exactly at the size cap is accepted", async () => {
  const h = await ready();
  const exact = new Uint8Array(1000);
  exact.set(PNG);
  h.web.serve(URL_A, exact);
  assert.equal((await h.callback(successBody())).status, 200);
});

Deno.test("the size cap defaults to the bucket's limit, and may not exceed it", async () => {
  // generated-images takes 20000000 bytes (file_size_limit): one byte more is never downloaded.
  const h = harness();
  await h.db.addAttempt({});
  const image = (size: number) => {
    const bytes = new Uint8Array(size);
    bytes.set(PNG);
    return bytes;
  };
  h.web.serve(URL_A, PNG);
  h.web.serve(URL_B, image(20_000_000));
  assert.equal((await h.callback(TWO)).body.result, "completed");

  const over = harness();
  await over.db.addAttempt({});
  over.web.serve(URL_A, PNG);
  over.web.serve(URL_B, image(20_000_001));
  assertFailedUnusable(over, await over.callback(TWO), /larger than 20000000 bytes/);

  assert.throws(() => harness({ KIE_RESULT_MAX_BYTES: "20000001" }), /must not exceed 20000000/);
  harness({ KIE_RESULT_MAX_BYTES: "20000000" });
});

Deno.test("empty size cap and timeout settings mean unset: the defaults apply, the function starts", async () => {
  const h = harness({ KIE_RESULT_MAX_BYTES: "", KIE_RESULT_TIMEOUT_MS: "" });
  await h.db.addAttempt({});
  h.web.serve(URL_A, PNG);
  h.web.serve(URL_B, bigPng());
  assert.equal((await h.callback(TWO)).body.result, "completed");
});

Deno.test("refusal reasons never carry the result URL (it can hold a signed query)", async () => {
  const h = await ready();
  const signedUrl = "https://tempfile.aiquickdraw.com/f/x.png?sig=SECRETSIG123";
  const res = await h.callback(successBody({ resultJson: JSON.stringify({ resultUrls: [signedUrl] }) }));
  assert.equal(res.status, 502);
  assert.ok(!JSON.stringify(res.body).includes("SECRETSIG123"));
  assert.ok(!h.logs.join("\n").includes("SECRETSIG123"));
});

Deno.test("Storage failing on the second image: 503, job not completed; the retry completes it", async () => {
  const h = await ready();
  h.web.serve(URL_B, JPEG, { "content-type": "image/jpeg" });
  h.storage.failOnUpload = 2;
  const first = await h.callback(TWO);
  assert.equal(first.status, 503);
  assert.match(String(first.body.msg), /storing result image 2 of 2 failed/);
  assertNotCompleted(h);
  assert.match(h.logs.join("\n"), /storage: 500 internal error/, "the cause is logged");

  assert.equal(h.storage.objects.size, 0, "the first image of the failed delivery is deleted");

  // KIE retries the same callback: a new delivery, into its own folder, completes it.
  const retry = await h.callback(TWO);
  assert.equal(retry.status, 200);
  assert.deepEqual(h.db.completed[0].paths, [
    `generated-images/${USER}/${JOB}/delivery-2/0.png`,
    `generated-images/${USER}/${JOB}/delivery-2/1.jpg`,
  ]);
  assert.deepEqual([...h.storage.objects.keys()], h.db.completed[0].paths);
});

Deno.test("a midway failure whose own delete fails hands the delivery's folder to the database", async () => {
  const h = await ready();
  h.web.serve(URL_B, JPEG, { "content-type": "image/jpeg" });
  h.storage.failOnUpload = 2;
  h.storage.remove = () => Promise.reject(new Error("storage: 503 unavailable"));
  const res = await h.callback(TWO);
  assert.equal(res.status, 503, "the answer is the failed upload's");
  assertNotCompleted(h);
  // One image was stored before the other's upload failed; it is still there.
  const [left] = [...h.storage.objects.keys()];
  assert.equal(h.storage.objects.size, 1);
  assert.deepEqual(h.db.discarded, [{ jobId: JOB, paths: [left] }], "the stored image goes to the database");
  assert.match(left, new RegExp(`^generated-images/${USER}/${JOB}/delivery-1/[01]\\.(png|jpg)$`));
  assert.match(
    h.logs.join("\n"),
    new RegExp(`"purge":"${USER}/${JOB}/delivery-1/"`),
    "the recorded purge is logged",
  );
});

Deno.test("a midway failure whose delete succeeds, or a delivery the database answered, tells it nothing more", async () => {
  const h = await ready();
  h.web.serve(URL_B, JPEG, { "content-type": "image/jpeg" });
  h.storage.failOnUpload = 2;
  assert.equal((await h.callback(TWO)).status, 503);
  assert.equal(h.storage.objects.size, 0);

  // A duplicate: callback_complete recorded the purge with its answer, the failed delete adds nothing.
  const late = await ready();
  late.web.routes.set(URL_A, () => {
    late.db.attempts.get(`${JOB}/1`)!.accepting = false;
    return new Response(PNG.slice());
  });
  late.storage.remove = () => Promise.reject(new Error("storage: 503 unavailable"));
  assert.equal((await late.callback(successBody())).body.result, "duplicate");
  assert.deepEqual([h.db.discarded, late.db.discarded], [[], []]);
});

Deno.test("the database failing to take the failed delivery too: the answer stays the failure's, logged", async () => {
  const h = await ready();
  h.web.serve(URL_B, JPEG, { "content-type": "image/jpeg" });
  h.storage.failOnUpload = 2;
  h.storage.remove = () => Promise.reject(new Error("storage: 503 unavailable"));
  h.db.discardDelivery = () => Promise.reject(new Error("connect ECONNREFUSED 127.0.0.1:5432"));
  const res = await h.callback(TWO);
  assert.equal(res.status, 503);
  assert.match(String(res.body.msg), /storing result image 2 of 2 failed/);
  assert.match(h.logs.join("\n"), /"purge":null,"error":"Error: connect ECONNREFUSED/);
});

Deno.test("Storage refusing the image itself: the job fails at once as unusable, like an image over the cap", async () => {
  for (
    const refusal of ["The object exceeded the maximum allowed size", "mime type image/webp is not supported"]
  ) {
    const h = await ready();
    h.web.serve(URL_B, JPEG, { "content-type": "image/jpeg" });
    h.storage.failOnUpload = 2;
    h.storage.uploadError = new ObjectRefused(`storage refused generated-images/x/1.jpg: ${refusal}`);
    const res = await h.callback(TWO);
    assertFailedUnusable(h, res, new RegExp(`result image 2 of 2 cannot be stored: .*${refusal}`));
    assert.ok(h.logs.join("\n").includes(refusal), "the cause is logged");
  }
});

Deno.test("the database unreachable: 503, nothing stored", async () => {
  const h = await ready();
  h.db.broken = new Error("connect ECONNREFUSED 127.0.0.1:5432");
  const res = await h.callback(successBody());
  assert.equal(res.status, 503);
  assert.match(String(res.body.msg), /retry later/);
  assert.equal(h.storage.uploads, 0);
  assert.match(h.logs.join("\n"), /ECONNREFUSED/);
});

Deno.test("completion failing after the uploads: 503 and not completed", async () => {
  const h = await ready();
  h.db.completeJob = () => Promise.reject(new Error("could not serialize access"));
  const res = await h.callback(successBody());
  assert.equal(res.status, 503);
  assertNotCompleted(h);
});

// ---------------------------------------------------------------------------------------------
// Where results may come from (results.allowed_hosts), redirects included
// ---------------------------------------------------------------------------------------------

const redirect = (location: string, status = 302) => () =>
  new Response(null, { status, headers: { location } });

// The same report comes on every delivery (recordInfo lists the same resultUrls for a finished
// task), so a result URL off the accepted hosts fails the job at once, as the database reads it.
const offHosts = ["http://127.0.0.1:54321/", "https://169.254.169.254/latest", "https://evil.test/a.png"];

for (const url of offHosts) {
  Deno.test(`a result URL off the accepted hosts (${url}) fails the job as unusable, never requested`, async () => {
    const h = await ready();
    h.web.serve(url, PNG);
    const res = await h.callback(successBody({ resultJson: JSON.stringify({ resultUrls: [URL_A, url] }) }));
    assertFailedUnusable(h, res, /^result URL 2 of 2 is not on an accepted result host/);
    assert.ok(
      !JSON.stringify(res.body).includes(url) && !h.logs.join("\n").includes(url),
      "the URL is not repeated",
    );
    assert.deepEqual(h.web.requested, []);
  });
}

Deno.test("a result URL the database read as accepted but the function's own check refuses: unusable too", async () => {
  // The list changed between the two reads, or the twins disagree: the function's check decides.
  for (const url of offHosts) {
    const h = await ready();
    h.db.interpretTaskReport = () => Promise.resolve({ outcome: "success", resultUrls: [url] });
    h.web.serve(url, PNG);
    const res = await h.callback(successBody({ resultJson: JSON.stringify({ resultUrls: [url] }) }));
    assertFailedUnusable(h, res, /^result image 1 of 1 cannot be stored: refused: /);
    assert.deepEqual(h.web.requested, []);
  }
});

Deno.test("redirects: followed within the accepted hosts, refused elsewhere, at most three", async () => {
  const h = await ready();
  const inside = "https://tempfile.aiquickdraw.com/moved.png";
  h.web.routes.set(URL_A, redirect("/moved.png", 301));
  h.web.serve(inside, PNG);
  assert.equal((await h.callback(successBody())).status, 200, "a relative redirect on the same host");
  assert.deepEqual(h.web.requested, [URL_A, inside]);

  for (
    const [target, why] of [
      ["http://169.254.169.254/latest/meta-data", /redirect refused/],
      ["http://tempfile.aiquickdraw.com/moved.png", /redirect refused: only https/],
      ["https://internal.tempfile.aiquickdraw.com.evil.test/x.png", /redirect refused/],
    ] as const
  ) {
    const g = await ready();
    g.web.routes.set(URL_A, redirect(target));
    g.web.serve(target, PNG);
    const res = await g.callback(successBody());
    assert.equal(res.status, 502);
    assert.deepEqual(g.web.requested, [URL_A], "the target is never requested");
    assert.match(g.logs.join("\n"), why);
    assertNotCompleted(g);
  }

  const loop = await ready();
  loop.web.routes.set(URL_A, redirect(URL_A));
  const res = await loop.callback(successBody());
  assert.equal(res.status, 502);
  assert.equal(loop.web.requested.length, 4, "the URL and three redirects");
  assert.match(loop.logs.join("\n"), /more than 3 redirects/);
});
