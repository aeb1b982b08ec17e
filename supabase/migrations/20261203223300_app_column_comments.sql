-- Why: two column comments the app's developers read (the dashboard, the descriptions in
-- PostgREST's OpenAPI document) said something else than the values are:
--   - generation_jobs.result_urls was "Storage URLs of the generated images once completed". It
--     holds durable object paths, bucket first (`generated-images/<user_id>/<job_id>/<delivery>/0.png`),
--     which the app signs with createSignedUrls after dropping the bucket; used as URLs they fetch
--     nothing. It is also emptied when the results are removed.
--   - models.max_prompt_length said "in characters"; start_generation counts UTF-16 code units (an
--     emoji beyond the Basic Multilingual Plane is two), the stricter reading of KIE's limit.
-- Comments only; no behaviour changes.

comment on column public.generation_jobs.result_urls is
  'Object paths of the generated images in Storage once completed, bucket first (generated-images/<user_id>/<job_id>/<delivery>/<n>.<ext>), never URLs: drop the bucket and sign them with createSignedUrls. Empty until completed and once results_removed_at is set.';
comment on column public.models.max_prompt_length is
  'Longest prompt KIE accepts, after the style fragment is added, counted in UTF-16 code units (an emoji beyond the Basic Multilingual Plane is two).';
