-- Why: start_generation refused an idempotency key made of spaces (KL027) but took one made of
-- other white space or invisible characters (a tab, a line feed, a no-break or zero-width space,
-- a Hangul filler). Such a key is blank by the rule every other text follows (private.is_blank),
-- and it was worse than none: an app that sent the same blank key on every start had every later
-- start with the same parameters answered with its first job (nothing new generated) and every
-- other one refused as an idempotency conflict (KL019), instead of hearing that the key is
-- invalid. A key with nothing visible is now refused with KL027 before anything is read or
-- locked. start_generation as in 20261202173000 otherwise.

-- The app's RPC. Security definer: clients cannot write jobs or balances themselves; this is the
-- only door, and it checks auth.uid() first. The grant to authenticated stays (create or replace).
create or replace function public.start_generation(
  prompt text default null,
  template_id uuid default null,
  inputs jsonb default null,
  quality text default 'fast',
  aspect_ratio text default null,
  image_urls text[] default null,
  style text default null,
  negative_prompt text default null,
  idempotency_key text default null
)
returns public.generation_jobs
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  request_bytes bigint;
  uid uuid := auth.uid();
begin
  if uid is null then
    perform private.raise_error('KL001', 'not signed in', null, 'Sign in before generating.');
  end if;
  -- Size first, on the parameters as received: nothing below (trimming, building and hashing the
  -- request) runs on an oversized one. create_generation_job checks the request it stores too.
  request_bytes := coalesce(octet_length(prompt), 0) + coalesce(octet_length(negative_prompt), 0)
    + coalesce(octet_length(inputs::text), 0) + coalesce(octet_length(array_to_string(image_urls, '')), 0)
    + coalesce(octet_length(quality), 0) + coalesce(octet_length(aspect_ratio), 0) + coalesce(octet_length(style), 0);
  if request_bytes > 65536 then
    perform private.raise_error('KL028', 'request too large', format('%s bytes, at most 65536', request_bytes),
      'Send shorter prompts and inputs.');
  end if;
  -- An idempotency key names one start, so it needs something visible: a key of white space or
  -- invisible characters (a tab, a line feed, a zero-width space) is no key, the same rule as a
  -- blank prompt. Checked here, before the profile is locked; the length too, so a long key is
  -- not scanned. create_generation_job keeps its own check for other callers.
  if idempotency_key is not null and (length(idempotency_key) > 200 or private.is_blank(idempotency_key)) then
    perform private.raise_error('KL027', 'invalid idempotency key', 'use 1 to 200 characters, with something visible',
      'Send a fresh random key, such as a UUID, for each new generation.');
  end if;
  -- Prompts are stored and fingerprinted trimmed, so padding neither costs storage nor changes
  -- the idempotency fingerprint; a negative prompt with nothing visible is no negative prompt.
  prompt := private.clean_text(prompt);
  negative_prompt := private.clean_text(negative_prompt);
  if private.is_blank(negative_prompt) then
    negative_prompt := null;
  end if;
  -- Empty lists and objects mean "none", so they fingerprint like omitted parameters.
  image_urls := nullif(image_urls, '{}');
  inputs := nullif(inputs, '{}'::jsonb);
  -- The request holds the parameters that are not null (SQL null or a JSON null for inputs), as
  -- one expression: jsonb orders keys itself, so the request and its fingerprint are what they were.
  return private.create_generation_job(
    uid,
    jsonb_build_object('quality', coalesce(quality, 'fast'))
      || case when prompt is null then '{}'::jsonb else jsonb_build_object('prompt', prompt) end
      || case when template_id is null then '{}'::jsonb else jsonb_build_object('template_id', template_id) end
      || case when inputs is null or jsonb_typeof(inputs) = 'null' then '{}'::jsonb else jsonb_build_object('inputs', inputs) end
      || case when aspect_ratio is null then '{}'::jsonb else jsonb_build_object('aspect_ratio', aspect_ratio) end
      || case when image_urls is null then '{}'::jsonb else jsonb_build_object('image_urls', to_jsonb(image_urls)) end
      || case when style is null then '{}'::jsonb else jsonb_build_object('style', style) end
      || case when negative_prompt is null then '{}'::jsonb else jsonb_build_object('negative_prompt', negative_prompt) end,
    idempotency_key);
end
$$;
