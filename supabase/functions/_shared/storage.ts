/**
 * Writing objects to Supabase Storage with the service credential (bypasses the bucket's
 * row-level policies, which let users read only the images their completed jobs list).
 */
import { createClient } from "@supabase/supabase-js";

export interface ObjectStore {
  /** Create `bucket/path` (never overwrites); throws when Storage refuses or cannot be reached. */
  upload(bucket: string, path: string, bytes: Uint8Array, contentType: string): Promise<void>;
  /** Delete these objects of `bucket`; throws when Storage refuses or cannot be reached. */
  remove(bucket: string, paths: string[]): Promise<void>;
}

export function supabaseObjectStore(supabaseUrl: string, serviceRoleKey: string): ObjectStore {
  const client = createClient(supabaseUrl, serviceRoleKey, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  });
  return {
    async upload(bucket, path, bytes, contentType) {
      // No upsert: every delivery writes its own folder, so nothing stored is ever replaced.
      const { error } = await client.storage.from(bucket).upload(path, bytes, { contentType, upsert: false });
      if (error) throw new Error(`storage refused ${bucket}/${path}: ${error.message}`);
    },
    async remove(bucket, paths) {
      const { error } = await client.storage.from(bucket).remove(paths);
      if (error) throw new Error(`storage refused deleting from ${bucket}: ${error.message}`);
    },
  };
}
