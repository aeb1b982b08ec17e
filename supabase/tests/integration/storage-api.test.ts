import { createHash } from "node:crypto";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import type { SupabaseClient } from "@supabase/supabase-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LOCAL_SERVICE_ROLE_KEY, signJwt, userJwt } from "../../../scripts/dev-stack/gateway/keys.ts";
import { connect } from "./support/db.ts";
import { anonClient, createUser, png, serviceClient, startTestGateway, type TestGateway, userClient } from "./support/gateway.ts";

// The Storage stand-in through the official client (supabase-js -> storage-js), as the app and
// the Edge Function use it. Behaviour and error shapes follow the real Storage server.
const sql = connect({ max: 2 });
let stack: TestGateway;
let user: { id: string; jwt: string };
let me: SupabaseClient;
let service: SupabaseClient;

const uploads = () => me.storage.from("user-uploads");

beforeAll(async () => {
  stack = await startTestGateway();
  user = await createUser(sql, "storage-api");
  me = userClient(stack.gateway.url, user.jwt);
  service = serviceClient(stack.gateway.url);
});

afterAll(async () => {
  await stack?.stop();
  await sql.end();
});

async function objectRow(bucket: string, name: string) {
  const [row] = await sql`select * from storage.objects where bucket_id = ${bucket} and name = ${name}`;
  return row;
}

describe("upload", () => {
  it("writes the file and a storage.objects row like the real server", async () => {
    const bytes = png(10);
    const { data, error } = await uploads().upload(`${user.id}/a.png`, new Blob([bytes], { type: "image/png" }));
    expect(error).toBeNull();
    expect(data?.fullPath).toBe(`user-uploads/${user.id}/a.png`);
    const row = await objectRow("user-uploads", `${user.id}/a.png`);
    expect(row.id).toBe(data?.id);
    expect(row.owner).toBe(user.id);
    expect(row.owner_id).toBe(user.id);
    expect(row.path_tokens).toEqual([user.id, "a.png"]);
    const md5 = createHash("md5").update(bytes).digest("hex");
    expect(row.metadata).toMatchObject({
      eTag: `"${md5}"`, size: bytes.length, mimetype: "image/png", cacheControl: "max-age=3600",
      contentLength: bytes.length, httpStatusCode: 200,
    });
    expect(await readdir(join(stack.storageDir, "user-uploads", user.id, "a.png"))).toEqual([row.version]);
  });

  it("refuses an upload over an existing path without upsert (409 Duplicate)", async () => {
    await uploads().upload(`${user.id}/dup.png`, new Blob([png()], { type: "image/png" }));
    const { error } = await uploads().upload(`${user.id}/dup.png`, new Blob([png(1)], { type: "image/png" }));
    expect(error).toMatchObject({ status: 400, statusCode: "409", message: "The resource already exists" });
  });

  it("upsert keeps the Id, writes a new version and replaces the file", async () => {
    const path = `${user.id}/up.png`;
    const first = await uploads().upload(path, new Blob([png()], { type: "image/png" }));
    const before = await objectRow("user-uploads", path);
    const second = await uploads().upload(path, new Blob([png(5)], { type: "image/png" }), { upsert: true });
    expect(second.error).toBeNull();
    expect(second.data?.id).toBe(first.data?.id);
    const after = await objectRow("user-uploads", path);
    expect(after.version).not.toBe(before.version);
    expect(after.metadata.size).toBe(png(5).length);
    expect(await readdir(join(stack.storageDir, "user-uploads", user.id, "up.png"))).toEqual([after.version]);
  });

  it("takes a raw body's content type, and refuses types outside the bucket's list by exact compare (415)", async () => {
    const raw = await uploads().upload(`${user.id}/raw.jpg`, png(), { contentType: "image/jpeg" });
    expect(raw.error).toBeNull();
    expect((await objectRow("user-uploads", `${user.id}/raw.jpg`)).metadata.mimetype).toBe("image/jpeg");
    const pdf = await uploads().upload(`${user.id}/doc.pdf`, new Blob(["%PDF"], { type: "application/pdf" }));
    expect(pdf.error).toMatchObject({ statusCode: "415", message: "mime type application/pdf is not supported" });
    const withParameter = await uploads().upload(`${user.id}/p.png`, png(), { contentType: "image/png;charset=UTF-8" });
    expect(withParameter.error).toMatchObject({ statusCode: "415" });
    const untyped = await uploads().upload(`${user.id}/untyped`, new Blob([png()]));
    expect(untyped.error).toMatchObject({ statusCode: "415", message: "mime type application/octet-stream is not supported" });
    expect(await objectRow("user-uploads", `${user.id}/doc.pdf`)).toBeUndefined();
  });

  it("passes a body of exactly the bucket's size limit and refuses one byte more (413)", async () => {
    const [{ limit }] = await sql`select file_size_limit::int as limit from storage.buckets where id = 'user-uploads'`;
    const exact = await uploads().upload(`${user.id}/exact.png`, new Blob([png(limit - png().length)], { type: "image/png" }));
    expect(exact.error).toBeNull();
    const over = await uploads().upload(`${user.id}/over.png`, new Blob([png(limit - png().length + 1)], { type: "image/png" }));
    expect(over.error).toMatchObject({ status: 400, statusCode: "413", message: "The object exceeded the maximum allowed size" });
    expect(await objectRow("user-uploads", `${user.id}/over.png`)).toBeUndefined();
  });

  it("refuses invalid keys and missing buckets", async () => {
    const key = await uploads().upload(`${user.id}/ü.png`, new Blob([png()], { type: "image/png" }));
    expect(key.error).toMatchObject({ statusCode: "400", message: `Invalid key: ${user.id}/ü.png` });
    const traversal = await fetch(`${stack.gateway.url}/storage/v1/object/user-uploads/${user.id}/..%2F..%2Fx.png`, {
      method: "POST", headers: { authorization: `Bearer ${user.jwt}`, "content-type": "image/png" }, body: png(),
    });
    expect(await traversal.json()).toMatchObject({ statusCode: "400", code: "InvalidKey" });
    const bucket = await me.storage.from("no-such-bucket").upload(`${user.id}/a.png`, new Blob([png()], { type: "image/png" }));
    expect(bucket.error).toMatchObject({ statusCode: "404", message: "Bucket not found" });
  });
});

describe("download", () => {
  const path = () => `${user.id}/dl.png`;
  const bytes = png(100);
  beforeAll(async () => {
    await uploads().upload(path(), new Blob([bytes], { type: "image/png" }), { cacheControl: "60" });
  });

  it("returns the bytes with the stored headers", async () => {
    const { data, error } = await uploads().download(path());
    expect(error).toBeNull();
    expect(new Uint8Array(await data!.arrayBuffer())).toEqual(bytes);
    const res = await fetch(`${stack.gateway.url}/storage/v1/object/authenticated/user-uploads/${path()}`, {
      headers: { authorization: `Bearer ${user.jwt}` },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("image/png");
    expect(res.headers.get("content-length")).toBe(String(bytes.length));
    expect(res.headers.get("cache-control")).toBe("max-age=60");
    expect(res.headers.get("etag")).toBe(`"${createHash("md5").update(bytes).digest("hex")}"`);
    expect(res.headers.get("last-modified")).toMatch(/GMT$/);
  });

  it("answers a Range with 206 and If-None-Match with 304", async () => {
    const url = `${stack.gateway.url}/storage/v1/object/user-uploads/${path()}`;
    const ranged = await fetch(url, { headers: { authorization: `Bearer ${user.jwt}`, range: "bytes=0-7" } });
    expect(ranged.status).toBe(206);
    expect(ranged.headers.get("content-range")).toBe(`bytes 0-7/${bytes.length}`);
    expect(new Uint8Array(await ranged.arrayBuffer())).toEqual(bytes.subarray(0, 8));
    const etag = ranged.headers.get("etag")!;
    const cached = await fetch(url, { headers: { authorization: `Bearer ${user.jwt}`, "if-none-match": etag } });
    expect(cached.status).toBe(304);
  });

  it("answers a missing object with NoSuchKey, and bad or missing credentials with the documented errors", async () => {
    const missing = await uploads().download(`${user.id}/nothing.png`);
    expect(missing.error).toMatchObject({ status: 400, statusCode: "404" });
    const url = `${stack.gateway.url}/storage/v1/object/user-uploads/${path()}`;
    const noAuth = await fetch(url);
    expect(noAuth.status).toBe(400);
    expect(await noAuth.json()).toMatchObject({ statusCode: "400", error: "Error", code: "InvalidRequest" });
    const forged = userJwt(user.id, { secret: "another-secret-that-is-at-least-32-chars" });
    const expired = userJwt(user.id, { expiresIn: -10 });
    for (const token of [forged, expired, "garbage"]) {
      const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ statusCode: "403", error: "Unauthorized", code: "AccessDenied" });
    }
    const unknownRoute = await fetch(`${stack.gateway.url}/storage/v1/nothing/here`, { headers: { authorization: `Bearer ${user.jwt}` } });
    expect(unknownRoute.status).toBe(404);
  });
});

describe("signed URLs", () => {
  const path = () => `${user.id}/signed.png`;
  const bytes = png(3);
  beforeAll(async () => {
    await uploads().upload(path(), new Blob([bytes], { type: "image/png" }));
  });

  it("signs a token JWT {url, scope, iat, exp} and serves the file with an expires header", async () => {
    const { data, error } = await uploads().createSignedUrl(path(), 120);
    expect(error).toBeNull();
    const url = new URL(data!.signedUrl);
    const token = url.searchParams.get("token")!;
    const [header, claims] = token.split(".").slice(0, 2).map((p) => JSON.parse(Buffer.from(p, "base64url").toString()));
    expect(header).toEqual({ alg: "HS256" });
    expect(Object.keys(claims)).toEqual(["url", "scope", "iat", "exp"]);
    expect(claims).toMatchObject({ url: `user-uploads/${path()}`, scope: "download" });
    expect(claims.exp - claims.iat).toBe(120);
    const res = await fetch(url); // no Authorization: the token is the credential
    expect(res.status).toBe(200);
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(bytes);
    expect(res.headers.get("expires")).toBe(new Date(claims.exp * 1000).toUTCString());
    const download = await uploads().createSignedUrl(path(), 60, { download: "mine.png" });
    const attached = await fetch(download.data!.signedUrl);
    expect(attached.headers.get("content-disposition")).toBe("attachment; filename=mine.png; filename*=UTF-8''mine.png");
  });

  it("refuses expired, forged and garbage tokens (InvalidJWT) and a token for another path (InvalidSignature)", async () => {
    const base = `${stack.gateway.url}/storage/v1/object/sign/user-uploads/${path()}?token=`;
    const iat = Math.floor(Date.now() / 1000);
    const expired = signJwt({ url: `user-uploads/${path()}`, scope: "download", iat: iat - 20, exp: iat - 10 }, undefined, { alg: "HS256" });
    const forged = signJwt({ url: `user-uploads/${path()}`, scope: "download", iat, exp: iat + 60 }, "x".repeat(40), { alg: "HS256" });
    for (const token of [expired, forged, "garbage"]) {
      const res = await fetch(base + token);
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ statusCode: "400", error: "InvalidJWT" });
    }
    const other = signJwt({ url: `user-uploads/${user.id}/a.png`, scope: "download", iat, exp: iat + 60 }, undefined, { alg: "HS256" });
    const res = await fetch(base + other);
    expect(await res.json()).toMatchObject({ statusCode: "400", error: "InvalidSignature", message: "Invalid signature" });
  });

  it("signs a batch with per-item errors, and refuses expiresIn below 1", async () => {
    const { data, error } = await uploads().createSignedUrls([path(), `${user.id}/missing.png`], 60);
    expect(error).toBeNull();
    expect(data![0]).toMatchObject({ error: null, path: path() });
    expect(data![0].signedUrl).toContain("token=");
    expect(data![1]).toMatchObject({
      error: "Either the object does not exist or you do not have access to it", path: `${user.id}/missing.png`, signedUrl: null,
    });
    const zero = await uploads().createSignedUrl(path(), 0);
    expect(zero.error).toMatchObject({ statusCode: "400" });
  });
});

describe("delete and list", () => {
  it("deletes with prefixes, returning the deleted rows; missing paths are left out", async () => {
    await uploads().upload(`${user.id}/del/1.png`, new Blob([png()], { type: "image/png" }));
    await uploads().upload(`${user.id}/del/2.png`, new Blob([png()], { type: "image/png" }));
    const listed = await uploads().list(`${user.id}/del`);
    expect(listed.data?.map((e) => e.name)).toEqual(["1.png", "2.png"]);
    const { data, error } = await uploads().remove([`${user.id}/del/1.png`, `${user.id}/del/2.png`, `${user.id}/del/3.png`]);
    expect(error).toBeNull();
    expect(data?.map((r) => r.name).sort()).toEqual([`${user.id}/del/1.png`, `${user.id}/del/2.png`]);
    expect(await objectRow("user-uploads", `${user.id}/del/1.png`)).toBeUndefined();
    await expect(readdir(join(stack.storageDir, "user-uploads", user.id, "del"))).rejects.toThrow();
  });

  it("the service key writes and deletes anywhere (no owner without a sub)", async () => {
    const path = `${user.id}/by-service.png`;
    const up = await service.storage.from("user-uploads").upload(path, new Blob([png()], { type: "image/png" }));
    expect(up.error).toBeNull();
    expect((await objectRow("user-uploads", path)).owner).toBeNull();
    const gone = await service.storage.from("user-uploads").remove([path]);
    expect(gone.data).toHaveLength(1);
  });

  it("anon sees nothing and writes nothing", async () => {
    const anon = anonClient(stack.gateway.url);
    const up = await anon.storage.from("user-uploads").upload(`${user.id}/anon.png`, new Blob([png()], { type: "image/png" }));
    expect(up.error).toMatchObject({ statusCode: "403", message: "new row violates row-level security policy" });
    const listed = await anon.storage.from("user-uploads").list(user.id);
    expect(listed.data).toEqual([]);
  });

  it("the service key is the documented local one", () => {
    expect(LOCAL_SERVICE_ROLE_KEY.split(".")[1]).toBe(
      Buffer.from(JSON.stringify({ iss: "supabase-demo", role: "service_role", exp: 1983812996 })).toString("base64url"),
    );
  });
});

describe("routes that must not bypass the policies", () => {
  const path = () => `${user.id}/guarded.png`;
  beforeAll(async () => {
    expect((await uploads().upload(path(), new Blob([png()], { type: "image/png" }))).error).toBeNull();
  });

  it("the public route serves nothing from a private bucket", async () => {
    const res = await fetch(`${stack.gateway.url}/storage/v1/object/public/user-uploads/${path()}`);
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ statusCode: "404" });
  });

  it("a JWT signed with the project's secret but naming a database role that is no API role is refused", async () => {
    const token = signJwt({ role: "postgres", exp: Math.floor(Date.now() / 1000) + 60 });
    const res = await fetch(`${stack.gateway.url}/storage/v1/object/user-uploads/${path()}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ statusCode: "403", error: "Unauthorized", code: "AccessDenied" });
  });
});
