-- Why: KL019 echoed the idempotency key bare ("key k 1 belongs to job ..."), so a key with
-- spaces, or one that reads like a sentence, ran into the text around it; every other refusal
-- quotes what was sent (private.error_value). The key is quoted now, in start_generation's KL019
-- and in grant_credits'. KL013's detail for a text-to-image start sent with photos said
-- "1 image URLs given"; one is counted in the singular now.
--
-- Only these texts change: grant_credits is that of 20261203214200, create_generation_job that
-- of 20261203214100.

create or replace function public.grant_credits(user_id uuid, amount integer, reason text, idempotency_key text default null)
returns public.credit_ledger
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  existing public.credit_ledger;
  entry public.credit_ledger;
begin
  -- A range test, not abs(): abs(-2147483648) itself overflows.
  if amount is null or amount = 0 or amount not between -1000000 and 1000000 then
    perform private.raise_error('KL025', 'amount must be a non-zero integer between -1000000 and 1000000',
      format('got %s', coalesce(amount::text, 'null')), 'Positive amounts grant, negative amounts adjust down.');
  end if;
  -- A reason and a key need something visible (private.is_blank: white space and invisible
  -- characters are nothing); the key's length is checked first, so a long key is not scanned.
  if reason is null or private.is_blank(reason) then
    perform private.raise_error('KL025', 'reason is required', null, 'Say why the balance changes; users see it in their history.');
  end if;
  if idempotency_key is not null
     and (length(idempotency_key) > 200 or private.is_blank(idempotency_key) or idempotency_key like 'system:%') then
    perform private.raise_error('KL027', 'invalid idempotency key',
      'use 1 to 200 characters, with something visible, not starting with "system:"',
      'Keys starting with "system:" are reserved for grants the database makes itself.');
  end if;
  -- A call without its user id (PostgREST passes a JSON null as SQL null) finds nobody; say so
  -- rather than name an empty id.
  if grant_credits.user_id is null then
    perform private.raise_error('KL025', 'unknown user', 'no user id was given', null);
  end if;
  -- Lock the profile first: a retried grant waits for the original and then sees it.
  perform 1 from public.profiles p where p.id = grant_credits.user_id for update;
  if not found then
    perform private.raise_error('KL025', 'unknown user', format('no profile %s', grant_credits.user_id), null);
  end if;
  if idempotency_key is not null then
    select * into existing from public.credit_ledger l
     where l.user_id = grant_credits.user_id and l.idempotency_key = grant_credits.idempotency_key;
    if found then
      if existing.amount <> grant_credits.amount then
        perform private.raise_error('KL019', 'idempotency key already used for a different amount',
          format('key %s granted %s', private.error_value(grant_credits.idempotency_key), existing.amount), 'Use a new key for a new grant.');
      end if;
      return existing;
    end if;
  end if;
  entry := private.post_ledger_entry(grant_credits.user_id, case when amount > 0 then 'grant' else 'adjustment' end,
                                     amount, reason, null, idempotency_key);
  if entry is null then
    perform private.raise_error('KL020', 'insufficient credits for this adjustment',
      format('the balance cannot go below zero (adjustment %s)', amount), null);
  end if;
  return entry;
end
$$;

create or replace function private.create_generation_job(
  user_id uuid, request jsonb, idempotency_key text default null, retry_of uuid default null
)
returns public.generation_jobs
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  profile public.profiles;
  plan public.plans;
  template public.templates;
  model public.models;
  style_fragment text;
  existing public.generation_jobs;
  job public.generation_jobs;
  fingerprint text;
  request_text text;
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
  bad_url_index bigint;
  problem text;
  active_jobs integer;
  recent_starts integer;
  cost integer;
  job_id uuid := private.uuid_v7(); -- time-ordered: see 20261202130000
  units integer;
begin
  -- 0. Size: the request is stored with the job, so bound it before any other work (even the
  --    fingerprint: hashing a huge request is work too). Its stored size comes first, so a huge
  --    request is refused without being serialized; its text then gets the exact limit.
  if pg_column_size(request) > 4 * 65536 then
    perform private.raise_error('KL028', 'request too large', format('over %s bytes, at most 65536', 4 * 65536),
      'Send shorter prompts and inputs.');
  end if;
  request_text := request::text;
  if octet_length(request_text) > 65536 then
    perform private.raise_error('KL028', 'request too large', format('%s bytes, at most 65536', octet_length(request_text)),
      'Send shorter prompts and inputs.');
  end if;
  fingerprint := md5(request_text);

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
          format('key %s belongs to job %s', private.error_value(idempotency_key), existing.id), 'Use a new key for a new generation.');
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
    perform private.raise_error('KL008', 'invalid quality', format('got %s', private.error_value(job_quality, 40)), 'Use fast, standard or ultra.');
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
    if private.is_blank(final_prompt) then
      perform private.raise_error('KL012', 'the template renders an empty prompt with these inputs', null, 'Fill in the fields.');
    end if;
  else
    job_mode := 'text-to-image';
    if request -> 'inputs' is not null and request -> 'inputs' <> '{}'::jsonb then
      perform private.raise_error('KL002', 'inputs apply to templates only', null, 'Leave inputs out for text-to-image.');
    end if;
    if cardinality(image_urls) > 0 then
      perform private.raise_error('KL013', 'text-to-image takes no images', format('%s image URL%s given', cardinality(image_urls), case when cardinality(image_urls) = 1 then '' else 's' end),
        'Use a template to edit photos.');
    end if;
    final_prompt := private.clean_text(user_prompt);
    if private.is_blank(final_prompt) then
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

  -- 5. Style, aspect ratio, lengths, characters, images. Lengths are checked before anything
  --    scans the text; image URLs must pass the image host policy (the provider fetches them).
  if style_key is not null then
    select prompt_fragment into style_fragment from public.styles s where s.key = style_key and s.is_active;
    if not found then
      perform private.raise_error('KL015', 'unknown style', format('no active style %s', private.error_value(style_key, 60)), 'Refresh the style list.');
    end if;
    final_prompt := rtrim(final_prompt, ' .,;:') || ', ' || style_fragment;
  end if;

  job_aspect_ratio := coalesce(job_aspect_ratio, template.default_aspect_ratio, '1:1');
  if not job_aspect_ratio = any (model.aspect_ratios) then
    perform private.raise_error('KL010', 'invalid aspect ratio', format('%s does not accept %s', model.display_name, private.error_value(job_aspect_ratio, 20)),
      'Use one of: ' || array_to_string(model.aspect_ratios, ', '));
  end if;

  -- Lengths in UTF-16 code units, as the provider counts them (a JavaScript string's length): a
  -- character beyond the Basic Multilingual Plane (most emoji) counts twice. A text has no more
  -- UTF-16 units than UTF-8 bytes, so only a text with more bytes than the limit is counted.
  -- The refusal names what the caller sent: a prompt, or a template's inputs (a template start
  -- sends no prompt), and the style only when one was sent.
  if octet_length(final_prompt) > model.max_prompt_length then
    units := length(final_prompt) + regexp_count(final_prompt, '[\U00010000-\U0010ffff]');
    if units > model.max_prompt_length then
      perform private.raise_error('KL011',
        case when job_mode = 'image-to-image' then 'the prompt this template renders is too long' else 'prompt too long' end,
        format('%s characters (UTF-16 units)%s, at most %s', units,
               case when job_mode = 'image-to-image' and style_key is not null then ' with these inputs and the style'
                    when job_mode = 'image-to-image' then ' with these inputs'
                    when style_key is not null then ' with the style'
                    else '' end,
               model.max_prompt_length),
        case when job_mode = 'image-to-image' then 'Shorten the text inputs' else 'Shorten the prompt' end
          || case when style_key is not null then ', or choose no style.' else '.' end);
    end if;
  end if;
  if octet_length(job_negative_prompt) > model.max_prompt_length then
    units := length(job_negative_prompt) + regexp_count(job_negative_prompt, '[\U00010000-\U0010ffff]');
    if units > model.max_prompt_length then
      perform private.raise_error('KL011', 'negative prompt too long',
        format('%s characters (UTF-16 units), at most %s', units, model.max_prompt_length), 'Shorten the negative prompt.');
    end if;
  end if;
  -- The refusal says which text holds the character: the prompt (a template's, as rendered) or
  -- the negative prompt.
  problem := private.control_character_problem(final_prompt);
  if problem is not null then
    perform private.raise_error('KL012',
      case when job_mode = 'image-to-image' then 'the prompt this template renders contains a control character'
           else 'the prompt contains a control character' end,
      problem, 'Remove control and text-direction characters; line breaks and tabs are fine.');
  end if;
  problem := private.control_character_problem(job_negative_prompt);
  if problem is not null then
    perform private.raise_error('KL012', 'the negative prompt contains a control character', problem,
      'Remove control and text-direction characters; line breaks and tabs are fine.');
  end if;

  if job_mode = 'image-to-image' then
    if cardinality(image_urls) not between greatest(template.min_images, model.min_input_images)
                                       and least(template.max_images, model.max_input_images) then
      perform private.raise_error('KL014', 'wrong number of images',
        format('%s given; %s with this template takes %s to %s', cardinality(image_urls), model.display_name,
               greatest(template.min_images, model.min_input_images), least(template.max_images, model.max_input_images)), null);
    end if;
    select u.position, p.problem into bad_url_index, problem
      from unnest(image_urls) with ordinality as u(url, position)
           cross join lateral (select private.image_url_problem(u.url) as problem) p
     where p.problem is not null
     order by u.position
     limit 1;
    if found then
      perform private.raise_error('KL013', 'image URL not accepted', format('image %s: %s', bad_url_index, problem),
        'Upload the photo to the app''s storage first and send the URL it returns.');
    end if;
  end if;

  -- 6. Moderation: the prompt as sent to the model, the negative prompt and every text input.
  --    Absent or empty texts cannot hold a term, so the matcher runs only on the others. The
  --    prompts are matched by plain calls; only a template's inputs need a query.
  if final_prompt <> '' then
    blocked := private.find_blocked_term(final_prompt);
  end if;
  if blocked is null and job_negative_prompt <> '' then
    blocked := private.find_blocked_term(job_negative_prompt);
  end if;
  if blocked is null and resolved_inputs <> '{}'::jsonb then
    select found_term into blocked
      from jsonb_each(resolved_inputs) i, lateral private.find_blocked_term(i.value #>> '{}') found_term
     where jsonb_typeof(i.value) = 'string' and i.value #>> '{}' <> '' and found_term is not null
     limit 1;
  end if;
  if blocked is not null then
    -- The matched term stays out of the error: naming it would help probe the list.
    perform private.raise_error('KL016', 'this request contains blocked content', null, 'Rephrase the prompt.');
  end if;

  -- 7. The plan's limits.
  --    Two counts, each over its own index (the partial active-jobs index, and user with
  --    created_at), read only those entries; one count over either condition merged both
  --    indexes into a bitmap and read the rows.
  select (select count(*) from public.generation_jobs j
           where j.user_id = create_generation_job.user_id and j.status in ('pending', 'generating')),
         (select count(*) from public.generation_jobs j
           where j.user_id = create_generation_job.user_id and j.created_at > now() - interval '1 minute')
    into active_jobs, recent_starts;
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

select private.pin_search_paths();
