-- Why: everything that must be true the instant the app starts a generation happens in one
-- transaction: authenticate, validate every input, render the template prompt, resolve and gate
-- the model, enforce the plan's limits, honour the idempotency key, debit the credits with a
-- ledger entry and insert the job. A refusal raises a documented KLxxx code and, because it
-- aborts the transaction, writes nothing.

-- ---------------------------------------------------------------------------------------------
-- Moderation: an operator-managed blocklist, matched case-insensitively on whole words (the
-- spaces of a phrase match any run of whitespace).
-- ---------------------------------------------------------------------------------------------

-- Text as the blocklist sees it: compatibility-normalized (fullwidth and styled letters become
-- plain ones), lowercased, with invisible characters (soft hyphen, zero-width spaces, word
-- joiners) removed so they cannot split a word.
create function private.moderation_text(content text)
returns text
language sql immutable
set search_path = ''
as $$
  select lower(regexp_replace(normalize(content, nfkc), '[\u00ad\u200b-\u200f\u2060\ufeff]', '', 'g'))
$$;
comment on function private.moderation_text(text) is 'API: Private. Normalizes text for blocklist matching.';

create table private.blocked_terms (
  term text primary key constraint blocked_terms_term_normalized check (term = lower(btrim(term)) and term <> ''),
  reason text not null default '',
  -- The term as a regex fragment over moderation_text: escaped, spaces matching any whitespace.
  pattern text not null generated always as (
    regexp_replace(regexp_replace(private.moderation_text(term), '([!$()*+.:<=>?[\\\]^{|}-])', '\\\1', 'g'), '\s+', '\\s+', 'g')
  ) stored,
  created_at timestamptz not null default now()
);
comment on table private.blocked_terms is
  'API: Private. Words and phrases refused in prompts and text inputs (KL016). Operators insert lowercase terms.';
alter table private.blocked_terms enable row level security;

-- The blocked text found, or null. A term matches between non-letters, so "nude_2" and
-- "nude." match "nude" while "denuded" does not; spaces in a phrase match any run of
-- whitespace. All terms go into one alternation built from the stored patterns, so Postgres'
-- regex cache compiles it once, not once per term per call.
create function private.find_blocked_term(content text)
returns text
language sql stable
set search_path = ''
as $$
  select (regexp_match(private.moderation_text(content),
            '(^|[^[:alpha:]])(' || string_agg(b.pattern, '|' order by length(b.term) desc, b.term) || ')($|[^[:alpha:]])'))[2]
    from private.blocked_terms b
$$;
comment on function private.find_blocked_term(text) is 'API: Private. The blocklisted text the content contains as a whole word, or null.';

-- ---------------------------------------------------------------------------------------------
-- The transaction behind start_generation and retry_generation. `request` holds the app's
-- parameters exactly as received (its hash is the idempotency fingerprint).
-- ---------------------------------------------------------------------------------------------
create function private.create_generation_job(
  user_id uuid, request jsonb, idempotency_key text default null, retry_of uuid default null
)
returns public.generation_jobs
language plpgsql volatile
set search_path = ''
as $$
declare
  profile public.profiles;
  plan public.plans;
  template public.templates;
  model public.models;
  style_fragment text;
  existing public.generation_jobs;
  job public.generation_jobs;
  fingerprint text := md5(request::text);
  job_mode text;
  job_quality text := coalesce(request ->> 'quality', 'fast');
  user_prompt text := request ->> 'prompt';
  job_negative_prompt text := request ->> 'negative_prompt';
  style_key text := request ->> 'style';
  job_aspect_ratio text := request ->> 'aspect_ratio';
  image_urls text[] := coalesce(array(select jsonb_array_elements_text(request -> 'image_urls')), '{}');
  resolved_inputs jsonb := '{}'::jsonb;
  final_prompt text;
  blocked text;
  bad_url text;
  active_jobs integer;
  recent_starts integer;
  cost integer;
  job_id uuid := gen_random_uuid();
begin
  -- 0. Size: the request is stored with the job, so bound it before any other work.
  if octet_length(request::text) > 65536 then
    perform private.raise_error('KL028', 'request too large', format('%s bytes, at most 65536', octet_length(request::text)),
      'Send shorter prompts and inputs.');
  end if;

  -- 1. Who: the profile row is locked for the rest of the transaction, which serializes one
  --    user's starts (limits and idempotency hold under concurrency).
  select * into profile from public.profiles p where p.id = create_generation_job.user_id for update;
  if not found then
    perform private.raise_error('KL001', 'not signed in', 'no profile for this user', 'Sign in before generating.');
  end if;
  select * into plan from public.plans where id = profile.plan;

  -- 2. Idempotency: the same key returns the same job, with no second debit.
  if idempotency_key is not null then
    if btrim(idempotency_key) = '' or length(idempotency_key) > 200 then
      perform private.raise_error('KL027', 'invalid idempotency key', 'use 1 to 200 characters', null);
    end if;
    select * into existing from public.generation_jobs j
     where j.user_id = create_generation_job.user_id and j.idempotency_key = create_generation_job.idempotency_key;
    if found then
      if existing.request_fingerprint <> fingerprint then
        perform private.raise_error('KL019', 'idempotency key already used with different parameters',
          format('key %s belongs to job %s', idempotency_key, existing.id), 'Use a new key for a new generation.');
      end if;
      return existing;
    end if;
  end if;

  -- 3. Shape: a template (image-to-image) or a prompt (text-to-image), never both.
  if (user_prompt is null) = (request ->> 'template_id' is null) then
    perform private.raise_error('KL002', 'send either template_id or prompt',
      case when user_prompt is null then 'neither was given' else 'both were given' end,
      'Use template_id with inputs and image_urls for a template; prompt for text-to-image.');
  end if;
  if job_quality not in ('fast', 'standard', 'ultra') then
    perform private.raise_error('KL008', 'invalid quality', format('got %s', job_quality), 'Use fast, standard or ultra.');
  end if;

  if request ->> 'template_id' is not null then
    job_mode := 'image-to-image';
    if job_negative_prompt is not null then
      perform private.raise_error('KL002', 'negative_prompt applies to text-to-image only', null, 'Leave it out for templates.');
    end if;
    select * into template from public.templates t where t.id = (request ->> 'template_id')::uuid and t.is_active;
    if not found then
      perform private.raise_error('KL003', 'template not found', format('no active template %s', request ->> 'template_id'),
        'Refresh the template list.');
    end if;
    if template.is_premium and plan.rank < (select rank from public.plans where id = 'paid') then
      perform private.raise_error('KL004', 'this template needs a paid plan', format('your plan is %s', plan.id), 'Upgrade to use premium templates.');
    end if;
    resolved_inputs := private.resolve_template_inputs(template.input_fields, request -> 'inputs');
    final_prompt := private.render_template_prompt(template.prompt_template, template.input_fields, resolved_inputs);
    if final_prompt = '' then
      perform private.raise_error('KL012', 'the template renders an empty prompt with these inputs', null, 'Fill in the fields.');
    end if;
  else
    job_mode := 'text-to-image';
    if request -> 'inputs' is not null and request -> 'inputs' <> '{}'::jsonb then
      perform private.raise_error('KL002', 'inputs apply to templates only', null, 'Leave inputs out for text-to-image.');
    end if;
    if cardinality(image_urls) > 0 then
      perform private.raise_error('KL013', 'text-to-image takes no images', format('%s image URLs given', cardinality(image_urls)),
        'Use a template to edit photos.');
    end if;
    final_prompt := private.clean_text(user_prompt);
    if final_prompt = '' then
      perform private.raise_error('KL012', 'prompt is empty', null, 'Describe the image to generate.');
    end if;
  end if;

  -- 4. Model: the active model for (mode, quality), open to the user's plan.
  select * into model from public.models m where m.mode = job_mode and m.quality = job_quality and m.is_active;
  if not found then
    perform private.raise_error('KL009', 'no model available', format('no active %s model at %s quality', job_mode, job_quality), 'Try another quality.');
  end if;
  if plan.rank < (select rank from public.plans where id = model.min_plan) then
    perform private.raise_error('KL004', format('%s needs the %s plan', model.display_name, model.min_plan),
      format('your plan is %s', plan.id), 'Upgrade, or choose a lower quality.');
  end if;

  -- 5. Style, aspect ratio, lengths, images. Image URLs need a dotted host name (KIE fetches them
  --    from the public internet) and no spaces, quotes or angle brackets.
  if style_key is not null then
    select prompt_fragment into style_fragment from public.styles s where s.key = style_key and s.is_active;
    if not found then
      perform private.raise_error('KL015', 'unknown style', format('no active style %s', style_key), 'Refresh the style list.');
    end if;
    final_prompt := rtrim(final_prompt, ' .,;:') || ', ' || style_fragment;
  end if;

  job_aspect_ratio := coalesce(job_aspect_ratio, template.default_aspect_ratio, '1:1');
  if not job_aspect_ratio = any (model.aspect_ratios) then
    perform private.raise_error('KL010', 'invalid aspect ratio', format('%s does not accept %s', model.display_name, job_aspect_ratio),
      'Use one of: ' || array_to_string(model.aspect_ratios, ', '));
  end if;

  if length(final_prompt) > model.max_prompt_length then
    perform private.raise_error('KL011', 'prompt too long',
      format('%s characters with the style, at most %s', length(final_prompt), model.max_prompt_length), 'Shorten the prompt.');
  end if;
  if job_negative_prompt is not null and length(job_negative_prompt) > model.max_prompt_length then
    perform private.raise_error('KL011', 'negative prompt too long',
      format('%s characters, at most %s', length(job_negative_prompt), model.max_prompt_length), 'Shorten the negative prompt.');
  end if;

  if job_mode = 'image-to-image' then
    if cardinality(image_urls) not between greatest(template.min_images, model.min_input_images)
                                       and least(template.max_images, model.max_input_images) then
      perform private.raise_error('KL014', 'wrong number of images',
        format('%s given; %s with this template takes %s to %s', cardinality(image_urls), model.display_name,
               greatest(template.min_images, model.min_input_images), least(template.max_images, model.max_input_images)), null);
    end if;
    select u into bad_url from unnest(image_urls) u
     where u is null or length(u) > 2048
        or u !~* '^https://[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+(:[0-9]{1,5})?([/?#][^\s"<>]*)?$'
     limit 1;
    if found then
      perform private.raise_error('KL013', 'image URLs must be absolute https URLs of at most 2048 characters',
        format('refused: %s', left(coalesce(bad_url, 'null'), 200)), 'Upload the photo first and send its https URL.');
    end if;
  end if;

  -- 6. Moderation: the prompt as sent to the model, the negative prompt and every text input.
  select found_term into blocked
    from unnest(array[final_prompt, job_negative_prompt]
                || array(select value #>> '{}' from jsonb_each(resolved_inputs) where jsonb_typeof(value) = 'string')) t,
         lateral private.find_blocked_term(t) found_term
   where found_term is not null
   limit 1;
  if blocked is not null then
    -- The matched term stays out of the error: naming it would help probe the list.
    perform private.raise_error('KL016', 'this request contains blocked content', null, 'Rephrase the prompt.');
  end if;

  -- 7. The plan's limits.
  select count(*) filter (where j.status in ('pending', 'generating')),
         count(*) filter (where j.created_at > now() - interval '1 minute')
    into active_jobs, recent_starts
    from public.generation_jobs j
   where j.user_id = create_generation_job.user_id
     and (j.status in ('pending', 'generating') or j.created_at > now() - interval '1 minute');
  if active_jobs >= plan.max_active_jobs then
    perform private.raise_error('KL017', 'too many generations in progress',
      format('%s running, your plan allows %s', active_jobs, plan.max_active_jobs), 'Wait for one to finish.');
  end if;
  if recent_starts >= plan.starts_per_minute then
    perform private.raise_error('KL018', 'too many generations started',
      format('%s in the last minute, your plan allows %s', recent_starts, plan.starts_per_minute), 'Try again in a minute.');
  end if;

  -- 8. The job, then its debit (the ledger entry names the job). Both commit or neither does.
  cost := case when plan.is_metered then model.credit_cost else 0 end;
  insert into public.generation_jobs (
    id, user_id, template_id, mode, prompt, negative_prompt, style, inputs, input_image_urls, aspect_ratio,
    model_key, quality, credits_charged, idempotency_key, request, request_fingerprint, retry_of)
  values (
    job_id, create_generation_job.user_id, template.id, job_mode, final_prompt, job_negative_prompt, style_key, resolved_inputs,
    image_urls, job_aspect_ratio, model.key, job_quality, cost, idempotency_key, request, fingerprint, retry_of)
  returning * into job;

  if cost > 0 and private.post_ledger_entry(create_generation_job.user_id, 'debit', -cost,
                                            format('%s generation', model.display_name), job_id) is null then
    perform private.raise_error('KL020', 'not enough credits',
      format('%s needs %s credits, your balance is %s', model.display_name, cost, profile.credits), 'Buy credits or choose a cheaper quality.');
  end if;
  return job;
end
$$;
comment on function private.create_generation_job(uuid, jsonb, text, uuid) is
  'API: Private. Validates a generation request, debits credits and inserts the job in one transaction.';

-- Refunds a failed job's charge exactly once (the ledger's unique (job_id, kind) backs this).
create function private.refund_job(job_id uuid, reason text)
returns void
language plpgsql volatile
set search_path = ''
as $$
declare
  job public.generation_jobs;
begin
  select * into job from public.generation_jobs j where j.id = refund_job.job_id;
  if job.status is distinct from 'failed' then
    raise exception 'refund_job: job % has not failed (status %)', refund_job.job_id, coalesce(job.status, 'missing');
  end if;
  if job.credits_charged > 0
     and not exists (select 1 from public.credit_ledger l where l.job_id = refund_job.job_id and l.kind = 'refund') then
    perform private.post_ledger_entry(job.user_id, 'refund', job.credits_charged, reason, job.id);
  end if;
end
$$;
comment on function private.refund_job(uuid, text) is 'API: Private. Refunds a job''s credits once; a second call does nothing.';

-- ---------------------------------------------------------------------------------------------
-- The app's RPCs. Security definer: clients cannot write jobs or balances themselves; these
-- functions are the only door, and each one checks auth.uid() first.
-- ---------------------------------------------------------------------------------------------
create function public.start_generation(
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
set search_path = ''
as $$
begin
  if auth.uid() is null then
    perform private.raise_error('KL001', 'not signed in', null, 'Sign in before generating.');
  end if;
  -- Prompts are stored and fingerprinted trimmed, so padding neither costs storage nor changes
  -- the idempotency fingerprint; an empty negative prompt is no negative prompt.
  prompt := private.clean_text(prompt);
  negative_prompt := nullif(private.clean_text(negative_prompt), '');
  -- Empty lists and objects mean "none", so they fingerprint like omitted parameters.
  image_urls := nullif(image_urls, '{}');
  inputs := nullif(inputs, '{}'::jsonb);
  return private.create_generation_job(
    auth.uid(),
    (select coalesce(jsonb_object_agg(parameter.key, parameter.value), '{}'::jsonb)
       from jsonb_each(jsonb_build_object(
              'prompt', prompt, 'template_id', template_id, 'inputs', inputs, 'quality', coalesce(quality, 'fast'),
              'aspect_ratio', aspect_ratio, 'image_urls', to_jsonb(image_urls), 'style', style,
              'negative_prompt', negative_prompt)) as parameter
      where jsonb_typeof(parameter.value) <> 'null'),
    idempotency_key);
end
$$;
comment on function public.start_generation(text, uuid, jsonb, text, text, text[], text, text, text) is
  'Starts a generation and returns the new job (status pending). Either template_id (with inputs and image_urls) or prompt (text-to-image). Debits the model''s price; errors are KLxxx codes (see README).';
grant execute on function public.start_generation(text, uuid, jsonb, text, text, text[], text, text, text) to authenticated;

create function public.retry_generation(job_id uuid)
returns public.generation_jobs
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  original public.generation_jobs;
  retry public.generation_jobs;
begin
  if auth.uid() is null then
    perform private.raise_error('KL001', 'not signed in', null, 'Sign in before generating.');
  end if;
  -- Locked so that concurrent retries of one job wait here and then return the same retry.
  select * into original from public.generation_jobs j where j.id = retry_generation.job_id and j.user_id = auth.uid() for update;
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
  return private.create_generation_job(original.user_id, original.request, null, original.id);
end
$$;
comment on function public.retry_generation(uuid) is
  'Starts a new job with the same parameters as one of my failed jobs (charged again, linked by retry_of). Asking twice returns the same retry.';
grant execute on function public.retry_generation(uuid) to authenticated;

create function public.cancel_generation(job_id uuid)
returns public.generation_jobs
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  job public.generation_jobs;
begin
  if auth.uid() is null then
    perform private.raise_error('KL001', 'not signed in', null, null);
  end if;
  -- Guarded transition: only a job still waiting to be sent can be cancelled, exactly once.
  update public.generation_jobs j
     set status = 'failed', stage = 'cancelled', error_code = 'cancelled',
         error_message = 'Cancelled before it was sent.', completed_at = now()
   where j.id = cancel_generation.job_id and j.user_id = auth.uid() and j.stage = 'queued'
  returning * into job;
  if not found then
    if exists (select 1 from public.generation_jobs j where j.id = cancel_generation.job_id and j.user_id = auth.uid()) then
      perform private.raise_error('KL023', 'this job can no longer be cancelled', 'it was already sent or has finished', null);
    end if;
    perform private.raise_error('KL021', 'job not found', format('no job %s of yours', cancel_generation.job_id), null);
  end if;
  perform private.refund_job(job.id, 'Refund: generation cancelled');
  return job;
end
$$;
comment on function public.cancel_generation(uuid) is
  'Cancels one of my jobs that has not been sent yet: it fails with error_code cancelled and its credits are refunded.';
grant execute on function public.cancel_generation(uuid) to authenticated;

-- Security invoker: RLS already limits the caller to their own jobs.
create function public.recent_prompts("limit" integer default 20)
returns table (prompt text, style text, quality text, aspect_ratio text, last_used_at timestamptz)
language plpgsql stable
set search_path = ''
as $$
begin
  if auth.uid() is null then
    raise exception using errcode = 'KL001', message = 'not signed in', hint = 'Sign in first.';
  end if;
  if "limit" is null or "limit" not between 1 and 100 then
    raise exception using errcode = 'KL025', message = 'limit must be between 1 and 100', detail = format('got %s', "limit");
  end if;
  return query
    select latest.prompt, latest.style, latest.quality, latest.aspect_ratio, latest.created_at
      from (select distinct on (j.request ->> 'prompt')
                   j.request ->> 'prompt' as prompt, j.style, j.quality, j.aspect_ratio, j.created_at
              from public.generation_jobs j
             where j.user_id = auth.uid() and j.mode = 'text-to-image'
             order by j.request ->> 'prompt', j.created_at desc) latest
     order by latest.created_at desc
     limit "limit";
end
$$;
comment on function public.recent_prompts(integer) is 'My most recent distinct text-to-image prompts, newest first, for the Create tab.';
grant execute on function public.recent_prompts(integer) to authenticated;
