-- Why: an anonymous account (Supabase anonymous sign-in: auth.users.is_anonymous, the JWT claim
-- is_anonymous) gets no welcome credits until it signs up (20261125090500), so its first start
-- was refused with KL020 "not enough credits" and the hint "Buy credits or choose a cheaper
-- quality": advice that is wrong for a guest, whose way to credits is to sign up. An app could not
-- tell from the refusal whether to offer sign-up or the credit shop.
--
-- The code stays KL020: the condition is the same (the balance is below the price), and an app
-- that already handles KL020 keeps working. An app tells the two apart by the caller, which it
-- knows without asking: its session's user is anonymous (supabase-js `user.is_anonymous`, the
-- same flag the database reads). For people and logs, the refusal of an anonymous account now
-- says so: the message names the anonymous account, the detail adds that it has no welcome
-- credits yet, and the hint says to sign up, with the welcome credits that signing up grants
-- (none when the free plan grants none, or the account already had them).
--
-- start_generation and retry_generation catch KL020 only for a token whose claims say it is
-- anonymous (the exception block is a subtransaction; a permanent account's start does not pay
-- for it), and auth.users decides: a token issued before the account signed up is answered as
-- the permanent account it now is. start_generation as in 20261203210000 and retry_generation as
-- in 20261203210100 otherwise.

-- Raises KL020 for an anonymous account; returns for any other, and the caller re-raises its own.
create function private.refuse_anonymous_without_credits(user_id uuid, detail text)
returns void
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  welcome integer;
begin
  if not exists (select from auth.users u where u.id = refuse_anonymous_without_credits.user_id and u.is_anonymous) then
    return;
  end if;
  -- What signing up grants: private.grant_welcome_credits' rule.
  select p.signup_credits into welcome from public.plans p where p.id = 'free';
  if exists (select from public.credit_ledger l
              where l.user_id = refuse_anonymous_without_credits.user_id and l.idempotency_key = 'system:signup') then
    welcome := 0;
  end if;
  perform private.raise_error('KL020', 'not enough credits: this is an anonymous account',
    concat_ws('; ', nullif(detail, ''), 'an anonymous account gets its welcome credits when it signs up'),
    case when welcome > 0
      then format('Sign up (add an email or link a provider to this account) to get %s free credits.', welcome)
      else 'Sign up (add an email or link a provider to this account), then buy credits.' end);
end
$$;
comment on function private.refuse_anonymous_without_credits(uuid, text) is
  'API: Private. For a KL020 refusal of a start or retry: raises KL020 again for an anonymous account (auth.users.is_anonymous), keeping the refusal''s detail and saying to sign up for the welcome credits; returns for a permanent account, whose refusal the caller re-raises as it was.';

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
  request jsonb;
  refused_detail text;
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
  request :=
    jsonb_build_object('quality', coalesce(quality, 'fast'))
      || case when prompt is null then '{}'::jsonb else jsonb_build_object('prompt', prompt) end
      || case when template_id is null then '{}'::jsonb else jsonb_build_object('template_id', template_id) end
      || case when inputs is null or jsonb_typeof(inputs) = 'null' then '{}'::jsonb else jsonb_build_object('inputs', inputs) end
      || case when aspect_ratio is null then '{}'::jsonb else jsonb_build_object('aspect_ratio', aspect_ratio) end
      || case when image_urls is null then '{}'::jsonb else jsonb_build_object('image_urls', to_jsonb(image_urls)) end
      || case when style is null then '{}'::jsonb else jsonb_build_object('style', style) end
      || case when negative_prompt is null then '{}'::jsonb else jsonb_build_object('negative_prompt', negative_prompt) end;
  -- An anonymous account has no credits until it signs up (the welcome grant waits for that), so
  -- its "not enough credits" means "sign up first": the same code, KL020, with a message, detail
  -- and hint that say so. Only a token that says it is anonymous pays for the exception block
  -- (a subtransaction); auth.users decides, so a token issued before the account signed up is
  -- answered as the permanent account it now is.
  if auth.jwt() ->> 'is_anonymous' = 'true' then
    begin
      return private.create_generation_job(uid, request, idempotency_key);
    exception when sqlstate 'KL020' then
      get stacked diagnostics refused_detail = pg_exception_detail;
      perform private.refuse_anonymous_without_credits(uid, refused_detail);
      raise;
    end;
  end if;
  return private.create_generation_job(uid, request, idempotency_key);
end
$$;

create or replace function public.retry_generation(job_id uuid)
returns public.generation_jobs
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  original public.generation_jobs;
  retry public.generation_jobs;
  refused_detail text;
begin
  if auth.uid() is null then
    perform private.raise_error('KL001', 'not signed in', null, 'Sign in before generating.');
  end if;
  -- A call without its id (PostgREST passes a JSON null as SQL null) finds nothing; say so
  -- rather than name an empty id.
  if retry_generation.job_id is null then
    perform private.raise_error('KL021', 'job not found', 'no job id was given', null);
  end if;
  -- The pipeline row first, in the order every pipeline transition takes its locks.
  perform from private.job_pipeline p
   where p.job_id = retry_generation.job_id
     and exists (select from public.generation_jobs j where j.id = p.job_id and j.user_id = auth.uid())
     for update of p;
  -- Locked so that concurrent retries of one job wait here and then return the same retry.
  select * into original from public.generation_jobs j
   where j.id = retry_generation.job_id and j.user_id = auth.uid() and j.deleted_at is null
     for update;
  if not found then
    perform private.raise_error('KL021', 'job not found', format('no job %s of yours', retry_generation.job_id), null);
  end if;
  if original.status <> 'failed' then
    perform private.raise_error('KL022', 'only failed jobs can be retried', format('job is %s', original.status), null);
  end if;
  -- One retry per failed job: asking again returns it.
  select * into retry from public.generation_jobs j where j.retry_of = original.id;
  if found then
    return retry;
  end if;
  -- As in start_generation: an anonymous account's KL020 says to sign up.
  if auth.jwt() ->> 'is_anonymous' = 'true' then
    begin
      return private.create_generation_job(original.user_id, original.request, null, original.id);
    exception when sqlstate 'KL020' then
      get stacked diagnostics refused_detail = pg_exception_detail;
      perform private.refuse_anonymous_without_credits(original.user_id, refused_detail);
      raise;
    end;
  end if;
  return private.create_generation_job(original.user_id, original.request, null, original.id);
end
$$;
