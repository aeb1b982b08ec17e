-- Why: generated images and the app's input photos live in Supabase Storage, in two private
-- buckets whose limits the Storage server enforces (size, MIME type) and whose row-level
-- policies on storage.objects decide who reads and writes what. Every user owns one folder per
-- bucket, named by their user id: `<user_id>/...`.
--
-- generated-images: `<user_id>/<job_id>/<n>.<ext>`. The owner reads (downloads, signs); only the
--   service writes (the kie-callback function, with the service key) and deletes (through the
--   Storage API, see the result purge). The app shows results by asking Storage for signed URLs
--   of the paths in generation_jobs.result_urls (createSignedUrls under the select policy).
-- user-uploads: input photos for image-to-image. The owner writes, replaces, reads and deletes
--   in their own folder; a signed URL of an upload is what the app passes to start_generation.
--
-- Platform notes: buckets are rows (insert ... on conflict, so a re-run or a bucket created from
-- the dashboard converges to these settings). On hosted projects `postgres` may insert buckets
-- and create policies on storage.objects (it is a member of the table's owner role) but may not
-- alter the table or comment on its policies: RLS is already enabled there, and each policy's
-- purpose is written beside it here instead.

insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types)
values
  -- KIE returns png or jpeg (output_format); webp is accepted for future models. 20 MB covers a 4K png.
  ('generated-images', 'generated-images', false, 20000000, array['image/png', 'image/jpeg', 'image/webp']),
  -- What KIE can fetch as an input image (jpeg/png/webp, at most 10 MB for the strictest model).
  ('user-uploads', 'user-uploads', false, 10000000, array['image/png', 'image/jpeg', 'image/webp'])
on conflict (id) do update
  set name = excluded.name,
      public = excluded.public,
      file_size_limit = excluded.file_size_limit,
      allowed_mime_types = excluded.allowed_mime_types;

-- One permissive policy per command for `authenticated`; the folder check runs auth.uid() once
-- per statement. Nothing is granted to anon. The service role bypasses RLS.

-- Reading (download, signed URLs, list): my own folder in either bucket.
create policy "Users can read their own images and uploads" on storage.objects
  for select to authenticated
  using (
    bucket_id in ('generated-images', 'user-uploads')
    and (storage.foldername(name))[1] = (select auth.uid())::text
  );

-- Writing: uploads only, into my own folder. No policy lets a user write generated-images.
create policy "Users can upload into their own folder" on storage.objects
  for insert to authenticated
  with check (
    bucket_id = 'user-uploads'
    and (storage.foldername(name))[1] = (select auth.uid())::text
  );

-- Replacing (upsert) one of my uploads, staying in my folder.
create policy "Users can replace their own uploads" on storage.objects
  for update to authenticated
  using (
    bucket_id = 'user-uploads'
    and (storage.foldername(name))[1] = (select auth.uid())::text
  )
  with check (
    bucket_id = 'user-uploads'
    and (storage.foldername(name))[1] = (select auth.uid())::text
  );

-- Deleting one of my uploads. Generated images go with delete_generation or retention.
create policy "Users can delete their own uploads" on storage.objects
  for delete to authenticated
  using (
    bucket_id = 'user-uploads'
    and (storage.foldername(name))[1] = (select auth.uid())::text
  );
