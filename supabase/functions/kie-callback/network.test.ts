// The same handler over real HTTP: served by Deno.serve, downloading with the real fetch from a
// local result host. Database and Storage are still fakes.
import assert from "node:assert/strict";
import { createHandler } from "./handler.ts";
import {
  DELIVERY,
  FakeDatabase,
  FakeStorage,
  JOB,
  NOW_MS,
  PNG,
  SERVICE_KEY,
  successBody,
  TOKEN,
  USER,
} from "./fakes.ts";

function serve(handler: (req: Request) => Response | Promise<Response>) {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handler);
  return { server, base: `http://127.0.0.1:${server.addr.port}` };
}

async function withStack(
  test: (
    o: {
      post: (body: BodyInit) => Promise<Response>;
      results: string;
      db: FakeDatabase;
      storage: FakeStorage;
      logs: string[];
    },
  ) => Promise<void>,
) {
  const stalls: (() => void)[] = [];
  const results = serve((req) => {
    const path = new URL(req.url).pathname;
    if (path === "/ok.png") return new Response(PNG.slice(), { headers: { "content-type": "image/png" } });
    if (path === "/huge.png") {
      // A PNG header followed by 2 MB, chunked: no Content-Length to trust.
      let sent = 0;
      return new Response(
        new ReadableStream({
          pull(c) {
            c.enqueue(sent === 0 ? PNG.slice() : new Uint8Array(64 * 1024));
            if (++sent > 32) c.close();
          },
        }),
      );
    }
    if (path === "/stall.png") {
      return new Response(
        new ReadableStream({
          start(c) {
            c.enqueue(PNG.slice(0, 8));
            stalls.push(() => {
              try {
                c.close();
              } catch { /* already cancelled by the client's abort */ }
            });
          },
        }),
      );
    }
    return new Response("not found", { status: 404 });
  });
  const db = new FakeDatabase();
  await db.addAttempt({});
  db.resultHosts = [results.base];
  const logs: string[] = [];
  const storage = new FakeStorage();
  const fn = serve(createHandler({
    db,
    storage,
    fetch,
    now: () => NOW_MS,
    env: {
      SUPABASE_SERVICE_ROLE_KEY: SERVICE_KEY,
      KIE_RESULT_MAX_BYTES: "1000000",
      KIE_RESULT_TIMEOUT_MS: "300",
    },
    log: (line) => logs.push(line),
    newId: () => DELIVERY,
  }));
  const q = new URLSearchParams({ job: JOB, attempt: "1", token: TOKEN });
  try {
    await test({
      post: (body) => fetch(`${fn.base}/kie-callback?${q}`, { method: "POST", body }),
      results: results.base,
      db,
      storage,
      logs,
    });
  } finally {
    stalls.forEach((close) => close());
    await Promise.all([fn.server.shutdown(), results.server.shutdown()]);
  }
}

const withResults = (...urls: string[]) =>
  JSON.stringify(successBody({ resultJson: JSON.stringify({ resultUrls: urls }) }));

Deno.test("over HTTP: a callback downloads, stores and completes", async () => {
  await withStack(async ({ post, results, db, storage }) => {
    const res = await post(withResults(`${results}/ok.png`));
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { code: 200, msg: "success", result: "completed" });
    assert.deepEqual(storage.objects.get(`generated-images/${USER}/${JOB}/${DELIVERY}/0.png`)?.bytes, PNG);
    assert.equal(db.completed.length, 1);
  });
});

Deno.test("over HTTP: stalled, missing and unreachable results are 502 and complete nothing", async () => {
  const gone = serve(() => new Response());
  const deadBase = gone.base;
  await gone.server.shutdown();
  await withStack(async ({ post, results, db, storage, logs }) => {
    db.resultHosts.push(deadBase);
    const cases: [string, RegExp][] = [
      [`${results}/stall.png`, /timed out after 300 ms/],
      [`${results}/missing.png`, /HTTP 404/],
      [`${deadBase}/ok.png`, /unreachable/],
    ];
    for (const [url, reason] of cases) {
      const res = await post(withResults(`${results}/ok.png`, url));
      assert.equal(res.status, 502, url);
      assert.equal((await res.json()).msg, "result image 2 of 2 could not be fetched");
      assert.match(logs.at(-1)!, reason);
    }
    assert.equal(storage.objects.size, 0, "what a failed delivery stored is deleted");
    assert.deepEqual(db.completed, []);
  });
});

Deno.test("over HTTP: a result over the size cap fails the job at once as unusable", async () => {
  await withStack(async ({ post, results, db, storage }) => {
    const res = await post(withResults(`${results}/ok.png`, `${results}/huge.png`));
    assert.equal(res.status, 200);
    assert.equal((await res.json()).result, "failure_recorded");
    assert.equal(db.failures.length, 1);
    assert.equal(db.failures[0].code, "unusable");
    assert.match(db.failures[0].message, /larger than 1000000 bytes/);
    assert.equal(storage.objects.size, 0, "what the failed delivery stored is deleted");
    assert.deepEqual(db.completed, []);
  });
});

Deno.test("over HTTP: a chunked body over 256 KiB is refused while reading", async () => {
  await withStack(async ({ post, db }) => {
    let chunks = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        c.enqueue(new Uint8Array(64 * 1024).fill(0x20));
        if (++chunks >= 1024) c.close();
      },
    });
    // 64 MiB offered: the answer comes long before the sender could have sent it all.
    const res = await post(body);
    assert.equal(res.status, 413);
    assert.ok(chunks < 1024, `answered before the body was read (${chunks} of 1024 chunks pulled)`);
    await res.body?.cancel();
    assert.equal(db.reports.length, 0);
  });
});
