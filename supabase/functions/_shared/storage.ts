/**
 * Writing objects to Supabase Storage with the service credential (bypasses the bucket's
 * row-level policies, which let users read only the images their completed jobs list).
 */
import { createClient } from "@supabase/supabase-js";

/** Storage refused the object itself (over the bucket's size limit, or a type it does not allow). */
export class ObjectRefused extends Error {}

// Statuses Storage refuses an object with for what it is: sending it again cannot succeed.
const REFUSES_THE_OBJECT = new Set(["413", "415"]);

export interface ObjectStore {
  /**
   * Create `bucket/path` (never overwrites); throws ObjectRefused when Storage refuses the object
   * itself, another error when it fails otherwise or cannot be reached.
   */
  upload(bucket: string, path: string, bytes: Uint8Array, contentType: string): Promise<void>;
  /** Delete these objects of `bucket`; throws when Storage refuses or cannot be reached. */
  remove(bucket: string, paths: string[]): Promise<void>;
}

const NULL_BODY_STATUSES = new Set([101, 204, 205, 304]);

/** Longest a Storage request may take, answer included: a 20 MB upload takes seconds. */
export const STORAGE_TIMEOUT_MS = 30_000;

export function supabaseObjectStore(
  supabaseUrl: string,
  serviceRoleKey: string,
  { timeoutMs = STORAGE_TIMEOUT_MS }: { timeoutMs?: number } = {},
): ObjectStore {
  // storage-js sets no timeout: a Storage that accepts the connection and never answers would
  // hold the request (and one of the function's download lanes) until the platform ends it.
  // Each request, its answer read in full (a small JSON body), gets at most timeoutMs; running
  // out is a failure of Storage (503, retried), never a refusal of the image.
  const timedFetch: typeof fetch = async (input, init) => {
    const controller = new AbortController();
    const timer = setTimeout(
      () => controller.abort(new DOMException(`no answer within ${timeoutMs} ms`, "TimeoutError")),
      timeoutMs,
    );
    try {
      const res = await fetch(input, { ...init, signal: controller.signal });
      const body = await res.arrayBuffer();
      // A 204 or 304 may carry no body, not even an empty one.
      return new Response(NULL_BODY_STATUSES.has(res.status) ? null : body, {
        status: res.status,
        statusText: res.statusText,
        headers: res.headers,
      });
    } catch (error) {
      throw controller.signal.aborted ? controller.signal.reason : error;
    } finally {
      clearTimeout(timer);
    }
  };
  const client = createClient(supabaseUrl, serviceRoleKey, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    global: { fetch: timedFetch },
  });
  return {
    async upload(bucket, path, bytes, contentType) {
      // No upsert: every delivery writes its own folder, so nothing stored is ever replaced.
      const { error } = await client.storage.from(bucket).upload(path, bytes, { contentType, upsert: false });
      if (error) {
        const message = `storage refused ${bucket}/${path}: ${error.message}`;
        // Storage answers most errors with HTTP 400; storage-js keeps the body's real status here.
        const status = String((error as { statusCode?: unknown }).statusCode);
        throw REFUSES_THE_OBJECT.has(status) ? new ObjectRefused(message) : new Error(message);
      }
    },
    async remove(bucket, paths) {
      const { error } = await client.storage.from(bucket).remove(paths);
      if (error) throw new Error(`storage refused deleting from ${bucket}: ${error.message}`);
    },
  };
}
