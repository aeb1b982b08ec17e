/**
 * A stand-in for the Supabase Storage API: the endpoints this project uses (upload, download,
 * signed URLs, delete, list), with the real server's routes, response headers and error bodies
 * (almost every error is HTTP 400 with the real status as a string). Development and tests only.
 *
 * Like the real server it verifies the request's JWT (HS256, the local secret), then runs the
 * request's SQL as the JWT's role with `request.jwt.claims` set, so the RLS policies on
 * `storage.objects` decide what a caller may read, write, sign or delete (`service_role`
 * bypasses RLS). Bucket lookups and limit checks run as the connection's owner, as the real
 * server does them with its admin connection. Object bytes live in real files under the data
 * directory, one file per version: `<dir>/<bucket>/<name>/<version>`.
 */
import { createHash, randomUUID } from "node:crypto";
import { mkdir, readdir, readFile, rmdir, unlink, writeFile } from "node:fs/promises";
import { basename, dirname, join, resolve, sep } from "node:path";
import type postgres from "postgres";
import { z } from "zod";
import { JwtError, LOCAL_JWT_SECRET, signJwt, verifyJwt, type JwtClaims } from "./keys.ts";

export interface StorageOptions {
  /** A pool connected as the database owner (the API roles are entered per request). */
  sql: postgres.Sql;
  /** Where object files are written. */
  dataDir: string;
  jwtSecret?: string;
  /** The project-wide upload limit in bytes (config.toml [storage] file_size_limit, 50 MiB). */
  globalFileSizeLimit?: number;
}

/** Handles a request whose path is below `/storage/v1` (`path` starts after it, e.g. `/object/...`). */
export type StorageHandler = (request: Request, path: string) => Promise<Response>;

const API_ROLES = new Set(["anon", "authenticated", "service_role"]);

/** An error reply: almost always HTTP 400 with the real status as a string in the body. */
class StorageError extends Error {
  constructor(
    readonly statusCode: string,
    readonly error: string,
    readonly code: string,
    message: string,
    readonly httpStatus = 400,
  ) {
    super(message);
  }
}

const fail = {
  duplicate: () => new StorageError("409", "Duplicate", "KeyAlreadyExists", "The resource already exists"),
  rls: () => new StorageError("403", "Unauthorized", "AccessDenied", "new row violates row-level security policy"),
  mime: (type: string) => new StorageError("415", "invalid_mime_type", "InvalidMimeType", `mime type ${type} is not supported`),
  tooLarge: () => new StorageError("413", "Payload too large", "EntityTooLarge", "The object exceeded the maximum allowed size"),
  notFound: () => new StorageError("404", "not_found", "NoSuchKey", "Object not found"),
  noBucket: () => new StorageError("404", "Bucket not found", "NoSuchBucket", "Bucket not found"),
  invalidKey: (key: string) => new StorageError("400", "InvalidKey", "InvalidKey", `Invalid key: ${key}`),
  noAuth: () => new StorageError("400", "Error", "InvalidRequest", "headers must have required property 'authorization'"),
  badJwt: (message: string) => new StorageError("403", "Unauthorized", "AccessDenied", message),
  invalidJwt: (message: string) => new StorageError("400", "InvalidJWT", "InvalidJWT", message),
  invalidSignature: () => new StorageError("400", "InvalidSignature", "InvalidSignature", "Invalid signature"),
  invalidRequest: (message: string) => new StorageError("400", "Error", "InvalidRequest", message),
};

function errorResponse(err: StorageError): Response {
  return Response.json(
    { statusCode: err.statusCode, error: err.error, message: err.message, code: err.code },
    { status: err.httpStatus },
  );
}

// ------------------------------------------------------------------------------------------------
// Request bodies (zod at the boundary)
// ------------------------------------------------------------------------------------------------

const signBody = z.object({ expiresIn: z.number().int().min(1) });
const signManyBody = z.object({ expiresIn: z.number().int().min(1), paths: z.array(z.string()).min(1) });
const deleteBody = z.object({ prefixes: z.array(z.string()).min(1) });
const listBody = z.object({
  prefix: z.string(),
  limit: z.number().int().min(1).optional(),
  offset: z.number().int().min(0).optional(),
  search: z.string().optional(),
  sortBy: z.object({ column: z.string().optional(), order: z.string().optional() }).optional(),
});

async function jsonBody<T>(request: Request, schema: z.ZodType<T>): Promise<T> {
  let raw: unknown;
  try {
    raw = await request.json();
  } catch {
    throw fail.invalidRequest("body must be JSON");
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw fail.invalidRequest(`body/${issue.path.join("/")} ${issue.message}`);
  }
  return parsed.data;
}

// ------------------------------------------------------------------------------------------------
// Keys, buckets, files
// ------------------------------------------------------------------------------------------------

/** The real server's rule (S3-safe characters), plus: no empty, `.` or `..` segments. */
function checkKey(name: string): string {
  const safe = name.length > 0 && /^(\w|\/|!|-|\.|\*|'|\(|\)| |&|\$|@|=|;|:|\+|,|\?)*$/.test(name);
  if (!safe || name.split("/").some((s) => s === "" || s === "." || s === "..")) throw fail.invalidKey(name);
  return name;
}

interface Bucket {
  id: string;
  public: boolean;
  file_size_limit: string | null;
  allowed_mime_types: string[] | null;
}

interface ObjectRow {
  id: string;
  name: string;
  version: string | null;
  metadata: { eTag?: string; size?: number; mimetype?: string; cacheControl?: string; lastModified?: string } | null;
}

function mimeAllowed(type: string, allowed: string[] | null): boolean {
  if (!allowed || allowed.length === 0) return true;
  return allowed.some((pattern) =>
    pattern.endsWith("/*") ? type.startsWith(pattern.slice(0, -1)) : pattern === type
  );
}

function pgCode(err: unknown): string | undefined {
  return (err as { code?: string }).code;
}

export function createStorageHandler(options: StorageOptions): StorageHandler {
  const { sql } = options;
  const secret = options.jwtSecret ?? LOCAL_JWT_SECRET;
  const globalLimit = options.globalFileSizeLimit ?? 50 * 1024 * 1024;
  const dataDir = resolve(options.dataDir);

  function objectDir(bucket: string, name: string): string {
    const dir = resolve(dataDir, bucket, name);
    if (!dir.startsWith(dataDir + sep)) throw fail.invalidKey(name);
    return dir;
  }

  function claimsOf(request: Request): JwtClaims {
    const header = request.headers.get("authorization");
    if (!header) throw fail.noAuth();
    const token = header.replace(/^bearer\s+/i, "");
    let claims: JwtClaims;
    try {
      claims = verifyJwt(token, secret);
    } catch (err) {
      throw fail.badJwt(err instanceof JwtError ? err.message : "invalid token");
    }
    if (typeof claims.role !== "string" || !API_ROLES.has(claims.role)) throw fail.badJwt(`role "${String(claims.role)}" is not an API role`);
    return claims;
  }

  /** Runs `fn` in a transaction as the JWT's role, with the claims PostgREST would set. */
  function asCaller<T>(claims: JwtClaims, fn: (tx: postgres.TransactionSql) => Promise<T>): Promise<T> {
    return sql.begin(async (tx) => {
      await tx`
        select set_config('role', ${claims.role as string}, true),
               set_config('request.jwt.claims', ${JSON.stringify(claims)}, true),
               set_config('request.jwt.claim.sub', ${typeof claims.sub === "string" ? claims.sub : ""}, true),
               set_config('request.jwt.claim.role', ${claims.role as string}, true)`;
      return fn(tx);
    }) as Promise<T>;
  }

  async function bucketOf(id: string): Promise<Bucket> {
    const [bucket] = await sql<Bucket[]>`
      select id, public, file_size_limit::text, allowed_mime_types from storage.buckets where id = ${id}`;
    if (!bucket) throw fail.noBucket();
    return bucket;
  }

  // ---------------------------------------------------------------------------------------------
  // Upload: POST (x-upsert) or PUT (always upsert), multipart or raw body
  // ---------------------------------------------------------------------------------------------
  async function upload(request: Request, bucketId: string, rawName: string, upsert: boolean): Promise<Response> {
    const claims = claimsOf(request);
    const name = checkKey(rawName);
    const bucket = await bucketOf(bucketId);

    let bytes: Buffer;
    let mimetype: string;
    let cacheControl: string;
    let userMetadata: unknown = null;
    const contentType = request.headers.get("content-type") ?? "";
    if (contentType.startsWith("multipart/form-data")) {
      const form = await request.formData();
      const file = [...form.values()].find((v): v is File => typeof v !== "string");
      if (!file) throw fail.invalidRequest("No file in the multipart body");
      bytes = Buffer.from(await file.arrayBuffer());
      mimetype = file.type || "application/octet-stream";
      const cache = form.get("cacheControl");
      cacheControl = typeof cache === "string" && cache !== "" ? `max-age=${cache}` : "no-cache";
      const meta = form.get("metadata");
      if (typeof meta === "string") userMetadata = parseMetadata(meta);
    } else {
      bytes = Buffer.from(await request.arrayBuffer());
      mimetype = contentType || "application/octet-stream";
      cacheControl = request.headers.get("cache-control") ?? "no-cache";
      const meta = request.headers.get("x-metadata");
      if (meta) userMetadata = parseMetadata(Buffer.from(meta, "base64").toString("utf8"));
    }

    const limit = bucket.file_size_limit === null ? globalLimit : Math.min(Number(bucket.file_size_limit), globalLimit);
    if (bytes.length > limit) throw fail.tooLarge();
    if (!mimeAllowed(mimetype, bucket.allowed_mime_types)) throw fail.mime(mimetype);

    const version = randomUUID();
    const dir = objectDir(bucketId, name);
    const md5 = createHash("md5").update(bytes).digest("hex");
    const metadata = {
      eTag: `"${md5}"`,
      size: bytes.length,
      mimetype,
      cacheControl,
      lastModified: new Date().toISOString(),
      contentLength: bytes.length,
      httpStatusCode: 200,
    };
    const owner = typeof claims.sub === "string" && claims.sub !== "" ? claims.sub : null;

    // The bytes first, then the row: a failed or refused write leaves no row pointing at nothing.
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, version), bytes);
    let written: { id: string; old_version: string | null };
    try {
      written = await asCaller(claims, async (tx) => {
        const userMeta = userMetadata === null ? null : tx.json(userMetadata as postgres.JSONValue);
        const rows = upsert
          ? await tx<{ id: string; old_version: string | null }[]>`
              with old as (select o.version from storage.objects o where o.bucket_id = ${bucketId} and o.name = ${name})
              insert into storage.objects as o (bucket_id, name, owner, owner_id, metadata, user_metadata, version)
              values (${bucketId}, ${name}, ${owner}, ${owner}, ${tx.json(metadata)}, ${userMeta}, ${version})
              on conflict (bucket_id, name) do update
                 set owner = excluded.owner, owner_id = excluded.owner_id, metadata = excluded.metadata,
                     user_metadata = excluded.user_metadata, version = excluded.version,
                     updated_at = now(), last_accessed_at = now()
              returning o.id, (select old.version from old) as old_version`
          : await tx<{ id: string; old_version: string | null }[]>`
              insert into storage.objects (bucket_id, name, owner, owner_id, metadata, user_metadata, version)
              values (${bucketId}, ${name}, ${owner}, ${owner}, ${tx.json(metadata)}, ${userMeta}, ${version})
              returning id, null::text as old_version`;
        return rows[0];
      });
    } catch (err) {
      await unlink(join(dir, version)).catch(() => {});
      if (pgCode(err) === "23505") throw fail.duplicate();
      if (pgCode(err) === "42501") throw fail.rls();
      if (pgCode(err) === "23503") throw fail.noBucket();
      throw err;
    }
    if (written.old_version && written.old_version !== version) {
      await unlink(join(dir, written.old_version)).catch(() => {});
    }
    return Response.json({ Key: `${bucketId}/${name}`, Id: written.id });
  }

  // ---------------------------------------------------------------------------------------------
  // Download (RLS), signed download (token), and the bytes with their headers
  // ---------------------------------------------------------------------------------------------
  async function visibleObject(claims: JwtClaims, bucketId: string, name: string): Promise<ObjectRow> {
    const rows = await asCaller(claims, (tx) => tx<ObjectRow[]>`
      select id, name, version, metadata from storage.objects where bucket_id = ${bucketId} and name = ${name}`);
    if (rows.length === 0) throw fail.notFound();
    return rows[0];
  }

  async function download(request: Request, bucketId: string, rawName: string): Promise<Response> {
    const claims = claimsOf(request);
    const name = checkKey(rawName);
    await bucketOf(bucketId);
    return serve(request, bucketId, await visibleObject(claims, bucketId, name), {});
  }

  async function publicDownload(request: Request, bucketId: string, rawName: string): Promise<Response> {
    const name = checkKey(rawName);
    const bucket = await bucketOf(bucketId);
    if (!bucket.public) throw fail.noBucket();
    const [row] = await sql<ObjectRow[]>`
      select id, name, version, metadata from storage.objects where bucket_id = ${bucketId} and name = ${name}`;
    if (!row) throw fail.notFound();
    return serve(request, bucketId, row, {});
  }

  async function signedDownload(request: Request, bucketId: string, rawName: string, url: URL): Promise<Response> {
    const token = url.searchParams.get("token");
    if (!token) throw fail.invalidRequest("querystring must have required property 'token'");
    let claims: JwtClaims;
    try {
      claims = verifyJwt(token, secret);
    } catch (err) {
      throw fail.invalidJwt(err instanceof JwtError ? err.message : "invalid token");
    }
    if (claims.url !== `${bucketId}/${rawName}`) throw fail.invalidSignature();
    const name = checkKey(rawName);
    await bucketOf(bucketId);
    const [row] = await sql<ObjectRow[]>`
      select id, name, version, metadata from storage.objects where bucket_id = ${bucketId} and name = ${name}`;
    if (!row) throw fail.notFound();
    const extra: Record<string, string> = {};
    if (typeof claims.exp === "number") extra["expires"] = new Date(claims.exp * 1000).toUTCString();
    const download = url.searchParams.get("download");
    if (download !== null) {
      const filename = download || basename(name);
      extra["content-disposition"] = `attachment; filename=${filename}; filename*=UTF-8''${encodeURIComponent(filename)}`;
    }
    return serve(request, bucketId, row, extra);
  }

  async function serve(request: Request, bucketId: string, row: ObjectRow, extra: Record<string, string>): Promise<Response> {
    let bytes: Buffer;
    try {
      bytes = await readFile(join(objectDir(bucketId, row.name), row.version ?? ""));
    } catch {
      throw fail.notFound();
    }
    const meta = row.metadata ?? {};
    const etag = meta.eTag ?? `"${createHash("md5").update(bytes).digest("hex")}"`;
    const headers: Record<string, string> = {
      "content-type": meta.mimetype ?? "application/octet-stream",
      "cache-control": meta.cacheControl ?? "no-cache",
      etag,
      "last-modified": new Date(meta.lastModified ?? Date.now()).toUTCString(),
      "accept-ranges": "bytes",
      ...extra,
    };
    const ifNoneMatch = request.headers.get("if-none-match");
    if (ifNoneMatch && ifNoneMatch.split(",").map((t) => t.trim().replace(/^W\//, "")).some((t) => t === etag || t === "*")) {
      return new Response(null, { status: 304, headers });
    }
    const range = request.headers.get("range");
    if (range) {
      const span = parseRange(range, bytes.length);
      if (span === "unsatisfiable") {
        return new Response(null, { status: 416, headers: { ...headers, "content-range": `bytes */${bytes.length}` } });
      }
      if (span) {
        const [start, end] = span;
        const part = bytes.subarray(start, end + 1);
        return new Response(request.method === "HEAD" ? null : new Uint8Array(part), {
          status: 206,
          headers: { ...headers, "content-range": `bytes ${start}-${end}/${bytes.length}`, "content-length": String(part.length) },
        });
      }
    }
    return new Response(request.method === "HEAD" ? null : new Uint8Array(bytes), {
      status: 200,
      headers: { ...headers, "content-length": String(bytes.length) },
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Signed URLs: one, or a batch with per-item errors
  // ---------------------------------------------------------------------------------------------
  function signedUrlFor(bucketId: string, name: string, expiresIn: number): string {
    const iat = Math.floor(Date.now() / 1000);
    const token = signJwt({ url: `${bucketId}/${name}`, scope: "download", iat, exp: iat + expiresIn }, secret, { alg: "HS256" });
    return `/object/sign/${bucketId}/${name}?token=${token}`;
  }

  async function sign(request: Request, bucketId: string, rawName: string): Promise<Response> {
    const claims = claimsOf(request);
    const { expiresIn } = await jsonBody(request, signBody);
    const name = checkKey(rawName);
    await bucketOf(bucketId);
    await visibleObject(claims, bucketId, name);
    return Response.json({ signedURL: signedUrlFor(bucketId, name, expiresIn) });
  }

  async function signMany(request: Request, bucketId: string): Promise<Response> {
    const claims = claimsOf(request);
    const { expiresIn, paths } = await jsonBody(request, signManyBody);
    await bucketOf(bucketId);
    const visible = new Set(
      (await asCaller(claims, (tx) => tx<{ name: string }[]>`
        select name from storage.objects where bucket_id = ${bucketId} and name = any(${paths})`)).map((r) => r.name),
    );
    return Response.json(paths.map((path) =>
      visible.has(path)
        ? { error: null, path, signedURL: signedUrlFor(bucketId, path, expiresIn) }
        : { error: "Either the object does not exist or you do not have access to it", path, signedURL: null }
    ));
  }

  // ---------------------------------------------------------------------------------------------
  // Delete (RLS decides; refused or missing paths are silently left out) and list
  // ---------------------------------------------------------------------------------------------
  async function remove(request: Request, bucketId: string): Promise<Response> {
    const claims = claimsOf(request);
    const { prefixes } = await jsonBody(request, deleteBody);
    await bucketOf(bucketId);
    const deleted = await asCaller(claims, async (tx) => {
      // Direct deletes are refused by storage.protect_delete unless this is set, as the real server does.
      await tx`select set_config('storage.allow_delete_query', 'true', true)`;
      return tx<(ObjectRow & Record<string, unknown>)[]>`
        delete from storage.objects where bucket_id = ${bucketId} and name = any(${prefixes})
        returning bucket_id, name, owner, owner_id, id, updated_at, created_at, last_accessed_at, metadata, user_metadata, version`;
    });
    for (const row of deleted) await removeObjectFiles(bucketId, row.name);
    return Response.json(deleted);
  }

  /** Removes an object's version files, and the folders it leaves empty. */
  async function removeObjectFiles(bucketId: string, name: string): Promise<void> {
    const dir = objectDir(bucketId, name);
    for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      if (entry.isFile()) await unlink(join(dir, entry.name)).catch(() => {});
    }
    let current = dir;
    const root = resolve(dataDir, bucketId);
    while (current.startsWith(root + sep)) {
      try {
        await rmdir(current);
      } catch {
        break; // not empty (another object lives below) or already gone
      }
      current = dirname(current);
    }
  }

  async function list(request: Request, bucketId: string): Promise<Response> {
    const claims = claimsOf(request);
    const body = await jsonBody(request, listBody);
    await bucketOf(bucketId);
    const prefix = body.prefix === "" || body.prefix.endsWith("/") ? body.prefix : `${body.prefix}/`;
    const rows = await asCaller(claims, (tx) => tx<Record<string, unknown>[]>`
      select name, id, updated_at, created_at, last_accessed_at, metadata
        from storage.objects where bucket_id = ${bucketId} and starts_with(name, ${prefix})`);
    const entries = new Map<string, Record<string, unknown>>();
    for (const row of rows) {
      const rest = (row.name as string).slice(prefix.length);
      const folder = rest.includes("/") ? rest.split("/")[0] : null;
      if (folder !== null) {
        entries.set(folder, { name: folder, id: null, updated_at: null, created_at: null, last_accessed_at: null, metadata: null });
      } else {
        entries.set(rest, { ...row, name: rest });
      }
    }
    const search = body.search ?? "";
    const descending = body.sortBy?.order?.toLowerCase() === "desc";
    const sorted = [...entries.values()]
      .filter((e) => (e.name as string).toLowerCase().startsWith(search.toLowerCase()))
      .sort((a, b) => (a.name as string) < (b.name as string) ? -1 : 1);
    if (descending) sorted.reverse();
    const offset = body.offset ?? 0;
    return Response.json(sorted.slice(offset, offset + (body.limit ?? 100)));
  }

  // ---------------------------------------------------------------------------------------------
  // Routes
  // ---------------------------------------------------------------------------------------------
  return async function handle(request: Request, path: string): Promise<Response> {
    const url = new URL(request.url);
    const segments = path.split("/").filter((s, i) => i > 0 || s !== "");
    const method = request.method;
    const decode = (parts: string[]) => parts.map((p) => decodeURIComponent(p)).join("/");
    try {
      if (segments[0] === "object" && segments.length >= 2) {
        const [, first, second] = segments;
        if (first === "sign" && second !== undefined) {
          const objectName = decode(segments.slice(3));
          if (method === "POST" && objectName === "") return await signMany(request, second);
          if (method === "POST") return await sign(request, second, objectName);
          if (method === "GET" || method === "HEAD") return await signedDownload(request, second, objectName, url);
        } else if (first === "list" && second !== undefined && method === "POST" && segments.length === 3) {
          return await list(request, second);
        } else if (first === "public" && second !== undefined && (method === "GET" || method === "HEAD")) {
          return await publicDownload(request, second, decode(segments.slice(3)));
        } else if (first === "authenticated" && second !== undefined && (method === "GET" || method === "HEAD")) {
          return await download(request, second, decode(segments.slice(3)));
        } else {
          const objectName = decode(segments.slice(2));
          if (method === "DELETE" && objectName === "") return await remove(request, first);
          if (objectName !== "") {
            if (method === "POST") return await upload(request, first, objectName, request.headers.get("x-upsert") === "true");
            if (method === "PUT") return await upload(request, first, objectName, true);
            if (method === "GET" || method === "HEAD") return await download(request, first, objectName);
          }
        }
      }
      return Response.json(
        { statusCode: "404", error: "Not Found", message: `Route ${method}:${path} not found` },
        { status: 404 },
      );
    } catch (err) {
      if (err instanceof StorageError) return errorResponse(err);
      throw err;
    }
  };
}

function parseMetadata(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw fail.invalidRequest("metadata must be JSON");
  }
}

/** [start, end] inclusive for a single `bytes=` range, null to ignore the header, or "unsatisfiable". */
function parseRange(header: string, size: number): [number, number] | null | "unsatisfiable" {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return null;
  let start: number;
  let end: number;
  if (m[1] === "") {
    const suffix = Number(m[2]);
    if (suffix === 0) return "unsatisfiable";
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start >= size || start > end) return "unsatisfiable";
  return [start, end];
}
