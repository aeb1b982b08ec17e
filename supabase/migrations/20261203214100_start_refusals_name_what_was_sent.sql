-- Why: start_generation's refusals did not always say what was wrong with what the caller sent.
--
-- * A value quoted in a detail was printed as it came, so an empty or blank one left a blank where
--   it belonged: an empty input key read "unknown input: " (KL007), an empty quality "got "
--   (KL008), an empty aspect ratio "Policy T2I does not accept " (KL010), an empty style "no
--   active style " (KL015); a style of a zero-width space, or a quality with a trailing space
--   ("got fast "), looked the same as the text around it. These values are now quoted by
--   private.error_value: in double quotes, escaped and cut as private.excerpt does, and a value
--   with nothing visible (private.is_blank) has each character written as an escape ("",
--   "\u0020\u0020", "\u200b").
-- * A template that declares no inputs answered inputs with "this template declares: "; it now
--   says it declares none.
-- * The model's prompt limit (KL011) always said "with the style", with or without one, and
--   called a template's rendered prompt "prompt" though a template start sends none. The detail
--   now names the style only when one was sent, and a template start hears about the prompt the
--   template renders with its inputs.
-- * A control character in the negative prompt was reported as "the prompt contains a control
--   character" (KL012); the message now names the negative prompt.
--
-- Codes are unchanged. resolve_template_inputs and create_generation_job are those of
-- 20261202172200 with these changes.

-- A value a client sent, for an error text.
create function private.error_value(content text, max_chars integer default 60)
returns text
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
  select case
    when content is null then null
    when content = '' then '""'
    -- Something visible: escaped and cut as every error text is.
    when not private.is_blank(content) then '"' || private.excerpt(content, max_chars) || '"'
    -- Nothing visible: every character as an escape, cut between escapes, never inside one.
    else '"' || (
      with pieces as (
        select t.n, case when ascii(t.c) > 65535 then '\U' || lpad(to_hex(ascii(t.c)), 8, '0')
                         else '\u' || lpad(to_hex(ascii(t.c)), 4, '0') end as piece
          from regexp_split_to_table(left(content, max_chars), '') with ordinality as t (c, n)
      ), placed as (
        select p.n, p.piece, sum(length(p.piece)) over (order by p.n) as upto from pieces p
      )
      select case when length(content) > max_chars or max(upto) > max_chars
                  then coalesce(string_agg(piece, '' order by n) filter (where upto <= max_chars - 1), '') || '…'
                  else string_agg(piece, '' order by n) end
        from placed) || '"'
  end
$$;
comment on function private.error_value(text, integer) is
  'API: Private. A client''s value for an error text: in double quotes, escaped and cut as private.excerpt does; a value with nothing visible has every character escaped, so an empty or blank value shows.';

-- Validates the user's inputs against the field definitions and returns every field's value
-- (defaults applied; null for an optional field left empty, or holding nothing visible: is_blank).
-- Raises KL005/KL006/KL007. Text is
-- trimmed, then its length and characters checked; numbers are made canonical before the range
-- check, so what is validated is what is rendered.
create or replace function private.resolve_template_inputs(input_fields jsonb, inputs jsonb)
returns jsonb
language plpgsql immutable
set search_path = pg_catalog, pg_temp
as $$
declare
  field jsonb;
  field_name text;
  value jsonb;
  number numeric;
  problem text;
  unknown text[];
  declared text;
  resolved jsonb := '{}'::jsonb;
begin
  inputs := coalesce(inputs, '{}');
  if jsonb_typeof(inputs) <> 'object' then
    perform private.raise_error('KL007', 'inputs must be a JSON object', format('got a JSON %s', jsonb_typeof(inputs)),
      'Send inputs as {"field_name": value, ...}.');
  end if;
  -- Keys are quoted (private.error_value), so an empty or blank key shows.
  select array_agg(private.error_value(k, 40) order by k) into unknown from jsonb_object_keys(inputs) k
   where not exists (select 1 from jsonb_array_elements(input_fields) f where f ->> 'name' = k);
  if unknown is not null then
    declared := (select string_agg(f ->> 'name', ', ') from jsonb_array_elements(input_fields) f);
    perform private.raise_error('KL007',
      'unknown input: ' || array_to_string(unknown[1:3], ', ') || case when cardinality(unknown) > 3 then format(' and %s more', cardinality(unknown) - 3) else '' end,
      coalesce('this template declares: ' || declared, 'this template declares no inputs'),
      case when declared is null then 'Leave inputs out for this template.' else 'Send only the template''s declared fields.' end);
  end if;

  for field in select f from jsonb_array_elements(input_fields) f loop
    field_name := field ->> 'name';
    value := inputs -> field_name;
    if value is null or jsonb_typeof(value) = 'null' or (jsonb_typeof(value) = 'string' and private.is_blank(value #>> '{}')) then
      value := nullif(field -> 'default_value', 'null');
      if jsonb_typeof(value) = 'string' and private.is_blank(value #>> '{}') then
        value := null;
      end if;
    end if;
    if value is null then
      if coalesce((field ->> 'required')::boolean, false) then
        perform private.raise_error('KL005', format('missing input: %s', field_name),
          format('"%s" (%s) is required', field ->> 'label', field ->> 'type'), 'Fill in every required field.');
      end if;
      resolved := resolved || jsonb_build_object(field_name, null);
      continue;
    end if;

    case field ->> 'type'
      when 'text' then
        if jsonb_typeof(value) <> 'string' then
          perform private.raise_error('KL006', format('invalid input: %s must be text', field_name), format('got a JSON %s', jsonb_typeof(value)), null);
        end if;
        value := to_jsonb(private.clean_text(value #>> '{}'));
        if length(value #>> '{}') > coalesce((field ->> 'max_length')::integer, 500) then
          perform private.raise_error('KL006', format('invalid input: %s is too long', field_name),
            format('%s characters, at most %s', length(value #>> '{}'), coalesce((field ->> 'max_length')::integer, 500)), 'Shorten the text.');
        end if;
        problem := private.control_character_problem(value #>> '{}');
        if problem is not null then
          perform private.raise_error('KL006', format('invalid input: %s contains a control character', field_name), problem,
            'Remove control and text-direction characters; line breaks and tabs are fine.');
        end if;
      when 'select' then
        if not (field -> 'options') @> jsonb_build_array(value) or jsonb_typeof(value) <> 'string' then
          perform private.raise_error('KL006', format('invalid input: %s is not one of the options', field_name),
            format('options: %s', (select string_agg(o, ', ') from jsonb_array_elements_text(field -> 'options') o)), 'Pick one of the options.');
        end if;
      when 'slider' then
        if jsonb_typeof(value) <> 'number' then
          perform private.raise_error('KL006', format('invalid input: %s must be a number', field_name), format('got a JSON %s', jsonb_typeof(value)), null);
        end if;
        number := private.canonical_number(value::numeric);
        if number is null or number not between (field ->> 'min')::numeric and (field ->> 'max')::numeric then
          perform private.raise_error('KL006', format('invalid input: %s is out of range', field_name),
            format('%s is not between %s and %s', coalesce(number::text, 'a number over 15 digits'),
                   private.excerpt(field ->> 'min', 24), private.excerpt(field ->> 'max', 24)),
            null);
        end if;
        value := to_jsonb(number);
      when 'toggle' then
        if jsonb_typeof(value) <> 'boolean' then
          perform private.raise_error('KL006', format('invalid input: %s must be true or false', field_name), format('got a JSON %s', jsonb_typeof(value)), null);
        end if;
    end case;
    resolved := resolved || jsonb_build_object(field_name, value);
  end loop;
  return resolved;
end
$$;
comment on function private.resolve_template_inputs(jsonb, jsonb) is
  'API: Private. Validates inputs against field definitions (KL005/KL006/KL007) and returns all values with defaults applied, numbers canonical.';

-- create_generation_job as in 20261202172200, with the refusals naming what was sent (see the top).
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
      perform private.raise_error('KL013', 'text-to-image takes no images', format('%s image URLs given', cardinality(image_urls)),
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
comment on function private.create_generation_job(uuid, jsonb, text, uuid) is
  'API: Private. Validates a generation request, debits credits and inserts the job in one transaction.';

select private.pin_search_paths();
