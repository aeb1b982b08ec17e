import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LOCAL_ANON_KEY, LOCAL_SERVICE_ROLE_KEY } from "../../../scripts/dev-stack/gateway/keys.ts";
import { ObjectRefused, supabaseObjectStore } from "../../functions/_shared/storage.ts";
import { RESULT_BUCKET, RESULT_BUCKET_MAX_BYTES } from "../../functions/_shared/result-bucket.ts";
import { connect } from "./support/db.ts";
import { completedJob, createUser, png, startTestGateway, type TestGateway, userClient } from "./support/gateway.ts";

// The kie-callback function's own pieces against the local platform: its Storage adapter
// against the Storage stand-in and the bucket policies, and the function itself served
// through the gateway from the repository's functions directory and config.toml.
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const sql = connect({ max: 2 });
let stack: TestGateway;

beforeAll(async () => {
  // supabase-js wants a WebSocket class when it builds a client, even one that only uses
  // Storage. Deno (the function's runtime) has one; Node 20 has none, so a stand-in that refuses
  // to connect is enough here.
  (globalThis as { WebSocket?: unknown }).WebSocket ??= class NoWebSocket {
    constructor() {
      throw new Error("no Realtime in these tests");
    }
  };
  stack = await startTestGateway({
    functionsDir: join(ROOT, "supabase/functions"),
    configPath: join(ROOT, "supabase/config.toml"),
    functionEnv: { KILN_FINALIZE_CREDENTIAL: `finalize-${crypto.randomUUID()}` },
  });
});

afterAll(async () => {
  await stack?.stop();
  await sql.end();
});

describe("the Storage adapter", () => {
  it("writes generated-images once (never replaces), removes; the owner reads only what a completed job lists", async () => {
    const owner = await createUser(sql, "callback-owner");
    const other = await createUser(sql, "callback-other");
    const store = supabaseObjectStore(stack.gateway.url, LOCAL_SERVICE_ROLE_KEY);
    const folder = crypto.randomUUID();
    let path = "";
    const jobId = await completedJob(sql, owner.id, (id) => {
      path = `${owner.id}/${id}/${folder}/0.png`;
      return [`generated-images/${path}`];
    });
    await store.upload("generated-images", path, png(1), "image/png");
    await expect(store.upload("generated-images", path, png(2), "image/png")).rejects.toThrow(/storage refused/);

    const mine = await userClient(stack.gateway.url, owner.jwt).storage.from("generated-images").download(path);
    expect(mine.error).toBeNull();
    expect(new Uint8Array(await mine.data!.arrayBuffer())).toEqual(png(1));
    const theirs = await userClient(stack.gateway.url, other.jwt).storage.from("generated-images").download(path);
    expect(theirs.data).toBeNull();
    const [row] = await sql`select metadata->>'mimetype' as mimetype from storage.objects
                             where bucket_id = 'generated-images' and name = ${path}`;
    expect(row.mimetype).toBe("image/png");

    const unlisted = `${owner.id}/${jobId}/another-delivery/0.png`;
    await store.upload("generated-images", unlisted, png(3), "image/png");
    const hidden = await userClient(stack.gateway.url, owner.jwt).storage.from("generated-images").download(unlisted);
    expect(hidden.data).toBeNull();
    await store.remove("generated-images", [unlisted]);
    const [{ count }] = await sql`select count(*)::int from storage.objects where bucket_id = 'generated-images' and name = ${unlisted}`;
    expect(count).toBe(0);
  });

  it("throws when Storage refuses, naming the object and the reason", async () => {
    const owner = await createUser(sql, "callback-refused");
    const store = supabaseObjectStore(stack.gateway.url, LOCAL_SERVICE_ROLE_KEY);
    const path = `${owner.id}/${crypto.randomUUID()}/0.txt`;
    await expect(store.upload("generated-images", path, new Uint8Array([1, 2, 3]), "text/plain")).rejects.toThrow(
      `storage refused generated-images/${path}: mime type text/plain is not supported`,
    );
    // A refusal of the object itself: no retry can mend it, so the function fails the job.
    await expect(store.upload("generated-images", path, new Uint8Array([1, 2, 3]), "text/plain")).rejects.toBeInstanceOf(ObjectRefused);
  });

  it("the function's size cap is the results bucket's own limit", async () => {
    const [{ limit }] = await sql<{ limit: number }[]>`
      select file_size_limit::int as limit from storage.buckets where id = ${RESULT_BUCKET}`;
    expect(RESULT_BUCKET_MAX_BYTES).toBe(limit);
  });
});

describe("the function through the gateway", () => {
  it("is reached without a JWT (verify_jwt = false) and refuses bad requests itself", async () => {
    const callback = await fetch(`${stack.gateway.url}/functions/v1/kie-callback?job=nope`, {
      method: "POST",
      body: "{}",
    });
    expect(callback.status).toBe(400);
    expect(await callback.json()).toEqual({
      code: 400,
      msg: "the callback URL needs job (uuid), attempt (1, 2, …) and token",
    });

    const q = new URLSearchParams({ job: crypto.randomUUID(), attempt: "1", source: "poll" });
    const finalize = await fetch(`${stack.gateway.url}/functions/v1/kie-callback?${q}`, {
      method: "POST",
      headers: { authorization: `Bearer ${LOCAL_ANON_KEY}` },
      body: "{}",
    });
    expect(finalize.status).toBe(401);
    expect(await finalize.json()).toEqual({ code: 401, msg: "finalize needs the finalize credential" });
  }, 60_000);
});
