/**
 * Writing objects to Supabase Storage with the service credential (bypasses the bucket's
 * row-level policies, which let users only read their own folder of `generated-images`).
 */
import { createClient } from "@supabase/supabase-js";

export interface ObjectStore {
  /** Create or overwrite `bucket/path`; throws when Storage refuses or cannot be reached. */
  upload(bucket: string, path: string, bytes: Uint8Array, contentType: string): Promise<void>;
}

export function supabaseObjectStore(supabaseUrl: string, serviceRoleKey: string): ObjectStore {
  const client = createClient(supabaseUrl, serviceRoleKey, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  });
  return {
    async upload(bucket, path, bytes, contentType) {
      // Upsert: a retried callback rewrites the same object instead of failing on a duplicate.
      const { error } = await client.storage.from(bucket).upload(path, bytes, { contentType, upsert: true });
      if (error) throw new Error(`storage refused ${bucket}/${path}: ${error.message}`);
    },
  };
}
