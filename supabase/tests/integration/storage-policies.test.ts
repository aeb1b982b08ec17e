import { randomUUID } from "node:crypto";
import type { SupabaseClient } from "@supabase/supabase-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect } from "./support/db.ts";
import { anonClient, completedJob, createUser, png, serviceClient, startTestGateway, type TestGateway, userClient } from "./support/gateway.ts";

// The bucket policies as the app meets them through the official client: results are read by
// their owner only (downloads and fresh signed URLs), only the service writes them; uploads are
// written and read by their owner only. RLS on storage.objects decides, as on the platform.
const sql = connect({ max: 2 });
let stack: TestGateway;
let owner: { id: string; jwt: string };
let other: { id: string; jwt: string };
let ownerClient: SupabaseClient;
let otherClient: SupabaseClient;
let service: SupabaseClient;
let jobId: string;
const image = png(42);
// What generation_jobs.result_urls holds: durable object paths, bucket first.
let resultPaths: string[];

const pngBlob = (bytes = png()) => new Blob([bytes], { type: "image/png" });
/** The app's way from result_urls to URLs it can show: strip the bucket, sign fresh. */
const objectPath = (resultPath: string) => resultPath.replace(/^generated-images\//, "");

beforeAll(async () => {
  stack = await startTestGateway();
  owner = await createUser(sql, "policies-owner");
  other = await createUser(sql, "policies-other");
  ownerClient = userClient(stack.gateway.url, owner.jwt);
  otherClient = userClient(stack.gateway.url, other.jwt);
  service = serviceClient(stack.gateway.url);
  resultPaths = [];
  // Listed by the job: a completed job's images are what its owner may read.
  jobId = await completedJob(sql, owner.id, (id) => [0, 1].map((n) => `generated-images/${owner.id}/${id}/${n}.png`));
  for (const n of [0, 1]) {
    const { data, error } = await service.storage.from("generated-images")
      .upload(`${owner.id}/${jobId}/${n}.png`, pngBlob(image), { upsert: true });
    expect(error).toBeNull();
    resultPaths.push(data!.fullPath);
  }
});

afterAll(async () => {
  await stack?.stop();
  // The deletion cascades to the job; it leaves a folder purge, as every suite's deleted account does.
  const users = [owner, other].filter(Boolean).map((u) => u.id);
  if (users.length > 0) await sql`delete from auth.users where id = any(${users}::uuid[])`;
  await sql.end();
});

describe("generated-images", () => {
  it("the owner signs fresh URLs for their results in one call and reads the images through them", async () => {
    expect(resultPaths).toEqual([`generated-images/${owner.id}/${jobId}/0.png`, `generated-images/${owner.id}/${jobId}/1.png`]);
    const { data, error } = await ownerClient.storage.from("generated-images").createSignedUrls(resultPaths.map(objectPath), 600);
    expect(error).toBeNull();
    expect(data!.map((d) => d.error)).toEqual([null, null]);
    for (const item of data!) {
      const res = await fetch(item.signedUrl!);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("image/png");
      expect(new Uint8Array(await res.arrayBuffer())).toEqual(image);
    }
    const download = await ownerClient.storage.from("generated-images").download(objectPath(resultPaths[0]));
    expect(download.error).toBeNull();
  });

  it("an image in the owner's job folder that the job does not list stays unreadable to the owner", async () => {
    // What a delivery that lost the race (or failed midway) leaves until it is deleted or purged.
    const stray = `${owner.id}/${jobId}/lost-delivery/0.png`;
    const up = await service.storage.from("generated-images").upload(stray, pngBlob(image));
    expect(up.error).toBeNull();
    const download = await ownerClient.storage.from("generated-images").download(stray);
    expect(download.error).toMatchObject({ statusCode: "404" });
    const signed = await ownerClient.storage.from("generated-images").createSignedUrl(stray, 600);
    expect(signed.error).toMatchObject({ statusCode: "404" });
    await service.storage.from("generated-images").remove([stray]);
  });

  it("another user can neither sign nor download them", async () => {
    const { data } = await otherClient.storage.from("generated-images").createSignedUrls(resultPaths.map(objectPath), 600);
    expect(data!.map((d) => [d.error, d.signedUrl])).toEqual([
      ["Either the object does not exist or you do not have access to it", null],
      ["Either the object does not exist or you do not have access to it", null],
    ]);
    const one = await otherClient.storage.from("generated-images").createSignedUrl(objectPath(resultPaths[0]), 600);
    expect(one.error).toMatchObject({ statusCode: "404" });
    const download = await otherClient.storage.from("generated-images").download(objectPath(resultPaths[0]));
    expect(download.error).toMatchObject({ statusCode: "404" });
  });

  it("anon can neither sign nor download them", async () => {
    const anon = anonClient(stack.gateway.url);
    const { data } = await anon.storage.from("generated-images").createSignedUrls(resultPaths.map(objectPath), 600);
    expect(data!.every((d) => d.signedUrl === null)).toBe(true);
    const download = await anon.storage.from("generated-images").download(objectPath(resultPaths[0]));
    expect(download.error).toMatchObject({ statusCode: "404" });
  });

  it("users cannot write results, not even in their own folder; the service can", async () => {
    const bucket = ownerClient.storage.from("generated-images");
    const insert = await bucket.upload(`${owner.id}/${randomUUID()}/0.png`, pngBlob());
    expect(insert.error).toMatchObject({ statusCode: "403", message: "new row violates row-level security policy" });
    const overwrite = await bucket.upload(objectPath(resultPaths[0]), pngBlob(), { upsert: true });
    expect(overwrite.error).toMatchObject({ statusCode: "403" });
    const removed = await bucket.remove([objectPath(resultPaths[0])]);
    expect(removed.data).toEqual([]);
    const [{ count }] = await sql`select count(*)::int from storage.objects where bucket_id = 'generated-images' and name like ${`${owner.id}/${jobId}/%`}`;
    expect(count).toBe(2);
  });

  it("enforces the image allowlist even for the service", async () => {
    const pdf = await service.storage.from("generated-images").upload(`${owner.id}/${jobId}/x.pdf`, new Blob(["%PDF"], { type: "application/pdf" }));
    expect(pdf.error).toMatchObject({ statusCode: "415" });
  });
});

describe("user-uploads", () => {
  it("a user writes, replaces, reads and deletes in their own folder", async () => {
    const bucket = ownerClient.storage.from("user-uploads");
    const path = `${owner.id}/photo.png`;
    expect((await bucket.upload(path, pngBlob())).error).toBeNull();
    expect((await bucket.upload(path, pngBlob(png(9)), { upsert: true })).error).toBeNull();
    const signed = await bucket.createSignedUrl(path, 300);
    expect((await fetch(signed.data!.signedUrl)).status).toBe(200);
    expect((await bucket.remove([path])).data).toHaveLength(1);
  });

  it("a user cannot write into, read from or delete in another user's folder", async () => {
    const path = `${owner.id}/private.png`;
    await ownerClient.storage.from("user-uploads").upload(path, pngBlob());
    const bucket = otherClient.storage.from("user-uploads");
    expect((await bucket.upload(`${owner.id}/intruder.png`, pngBlob())).error).toMatchObject({ statusCode: "403" });
    expect((await bucket.upload(path, pngBlob(png(1)), { upsert: true })).error).toMatchObject({ statusCode: "403" });
    expect((await bucket.download(path)).error).toMatchObject({ statusCode: "404" });
    expect((await bucket.remove([path])).data).toEqual([]);
    expect((await bucket.list(owner.id)).data).toEqual([]);
    const [{ count }] = await sql`select count(*)::int from storage.objects where bucket_id = 'user-uploads' and name = ${path}`;
    expect(count).toBe(1);
  });

  it("anon cannot upload", async () => {
    const anon = anonClient(stack.gateway.url);
    const up = await anon.storage.from("user-uploads").upload(`${owner.id}/anon.png`, pngBlob());
    expect(up.error).toMatchObject({ statusCode: "403" });
  });
});
