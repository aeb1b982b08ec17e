// The Storage adapter speaks the Storage API the way storage-api.md records it: checked against a
// local HTTP server standing in for `/storage/v1` that records what the official client sends.
import assert from "node:assert/strict";
import { ObjectRefused, supabaseObjectStore } from "../_shared/storage.ts";
import { PNG, SERVICE_KEY } from "./fakes.ts";

interface Seen {
  method: string;
  path: string;
  headers: Headers;
  body: Uint8Array;
}

async function withStorage(reply: Response, test: (url: string, seen: Seen[]) => Promise<void>) {
  const seen: Seen[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const { pathname } = new URL(req.url);
    seen.push({
      method: req.method,
      path: pathname,
      headers: req.headers,
      body: new Uint8Array(await req.arrayBuffer()),
    });
    return reply.clone();
  });
  try {
    await test(`http://127.0.0.1:${server.addr.port}`, seen);
  } finally {
    await server.shutdown();
  }
}

Deno.test("upload: the object's path, no upsert, its content type and bytes, the service key", async () => {
  const ok = Response.json({ Key: "generated-images/u/j/1.png", Id: crypto.randomUUID() });
  await withStorage(ok, async (url, seen) => {
    await supabaseObjectStore(url, SERVICE_KEY).upload("generated-images", "u/j/1.png", PNG, "image/png");
    assert.equal(seen.length, 1);
    const [req] = seen;
    assert.equal(req.method, "POST");
    assert.equal(req.path, "/storage/v1/object/generated-images/u/j/1.png");
    assert.equal(req.headers.get("x-upsert"), "false", "a stored object is never replaced");
    assert.equal(req.headers.get("content-type"), "image/png");
    assert.equal(req.headers.get("authorization"), `Bearer ${SERVICE_KEY}`);
    assert.deepEqual(req.body, PNG);
  });
});

Deno.test("remove: one request deleting the listed objects, with the service key", async () => {
  await withStorage(Response.json([]), async (url, seen) => {
    await supabaseObjectStore(url, SERVICE_KEY).remove("generated-images", ["u/j/d/0.png", "u/j/d/1.png"]);
    assert.equal(seen.length, 1);
    const [req] = seen;
    assert.equal(req.method, "DELETE");
    assert.equal(req.path, "/storage/v1/object/generated-images");
    assert.equal(req.headers.get("authorization"), `Bearer ${SERVICE_KEY}`);
    assert.deepEqual(JSON.parse(new TextDecoder().decode(req.body)), {
      prefixes: ["u/j/d/0.png", "u/j/d/1.png"],
    });
  });
});

Deno.test("upload: a refusal (HTTP 400 carrying the real status) throws, without the key", async () => {
  const refused = Response.json(
    {
      statusCode: "413",
      error: "Payload too large",
      message: "The object exceeded the maximum allowed size",
    },
    { status: 400 },
  );
  await withStorage(refused, async (url) => {
    const store = supabaseObjectStore(url, SERVICE_KEY);
    const error = await store.upload("generated-images", "u/j/1.png", PNG, "image/png").then(
      () => null,
      (e: Error) => e,
    );
    assert.ok(error, "the upload must fail");
    assert.match(
      error.message,
      /generated-images\/u\/j\/1\.png: The object exceeded the maximum allowed size/,
    );
    assert.ok(!error.message.includes(SERVICE_KEY));
  });
});

Deno.test("upload: refusals of the object itself are ObjectRefused; other failures are not", async () => {
  // Bodies as Storage sends them (storage-api.md): HTTP 400, the real status in statusCode.
  const refusal = (statusCode: string, error: string, message: string) =>
    Response.json({ statusCode, error, message }, { status: 400 });
  const cases: [Response, boolean][] = [
    [refusal("413", "Payload too large", "The object exceeded the maximum allowed size"), true],
    [refusal("415", "invalid_mime_type", "mime type image/gif is not supported"), true],
    [refusal("409", "Duplicate", "The resource already exists"), false],
    [refusal("403", "Unauthorized", "new row violates row-level security policy"), false],
    [refusal("404", "Bucket not found", "Bucket not found"), false],
    [new Response("upstream failed", { status: 502 }), false],
    [
      Response.json({ statusCode: "500", error: "internal", message: "internal error" }, { status: 500 }),
      false,
    ],
  ];
  for (const [reply, refused] of cases) {
    await withStorage(reply, async (url) => {
      const error = await supabaseObjectStore(url, SERVICE_KEY)
        .upload("generated-images", "u/j/1.png", PNG, "image/png")
        .then(() => null, (e: Error) => e);
      assert.ok(error, "the upload must fail");
      assert.equal(error instanceof ObjectRefused, refused, error.message);
    });
  }
});

Deno.test("a Storage that never answers: upload and remove fail after the timeout, not hang", async () => {
  const pending: (() => void)[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () =>
      new Promise<Response>((resolve) => pending.push(() => resolve(new Response(null, { status: 503 })))),
  );
  try {
    const store = supabaseObjectStore(`http://127.0.0.1:${server.addr.port}`, SERVICE_KEY, {
      timeoutMs: 100,
    });
    const upload = await store.upload("generated-images", "u/j/1.png", PNG, "image/png").then(
      () => null,
      (e: Error) => e,
    );
    assert.ok(upload, "the upload must fail");
    assert.ok(!(upload instanceof ObjectRefused), "Storage failing is not a refusal of the image");
    assert.match(upload.message, /no answer within 100 ms/);
    const remove = await store.remove("generated-images", ["u/j/1.png"]).then(() => null, (e: Error) => e);
    assert.ok(remove, "the delete must fail");
    assert.match(remove.message, /no answer within 100 ms/);
  } finally {
    pending.forEach((answer) => answer());
    await server.shutdown();
  }
});

Deno.test("an answer with no body (204) reaches the client as Storage sent it, not as an error of the timeout wrapper", async () => {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response(null, { status: 204 }),
  );
  try {
    const store = supabaseObjectStore(`http://127.0.0.1:${server.addr.port}`, SERVICE_KEY);
    // storage-js expects JSON after a success, so both still fail, but on Storage's answer.
    for (
      const call of [
        () => store.upload("generated-images", "u/j/1.png", PNG, "image/png"),
        () => store.remove("generated-images", ["u/j/1.png"]),
      ]
    ) {
      const error = await call().then(() => null, (e: Error) => e);
      assert.ok(error);
      assert.doesNotMatch(error.message, /null body status/);
    }
  } finally {
    await server.shutdown();
  }
});
