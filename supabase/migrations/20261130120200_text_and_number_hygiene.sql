-- Why: prompts and template text inputs passed control characters (ESC, BEL, CR) and bidi
-- overrides and isolates (U+202E, U+2066) straight into the prompt; slider numbers were used as
-- sent, so 10.0000000000000000000000001 rendered verbatim, 10 + 1e-16000 rendered 16,229
-- characters and 1e60000 produced a 60 KB error detail; and a 50 MB prompt was trimmed by a
-- regex for seconds before the size check refused it.
--
-- Now: line breaks are normalized (CR LF and CR become LF) and other control characters, bidi
-- embeddings, overrides and isolates are refused (KL012 in prompts, KL006 in text inputs);
-- newlines and tabs stay. Slider numbers are rounded to 6 decimal places, limited to 15 digits
-- before the point, and rendered in that canonical form. Error texts are bounded. Trimming no
-- longer uses a regex (start_generation now checks sizes before it trims anything).

-- A bounded excerpt of text for error messages.
create function private.excerpt(content text, max_chars integer default 60)
returns text
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
  select case when length(content) > max_chars then left(content, max_chars - 1) || '…' else content end
$$;
comment on function private.excerpt(text, integer) is 'API: Private. The text, cut to max_chars with an ellipsis, for error messages.';

-- Error texts stay short whatever a caller formats into them.
create or replace function private.raise_error(code text, message text, detail text default null, hint text default null)
returns void
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
begin
  raise exception using errcode = code, message = private.excerpt(message, 200),
    detail = coalesce(private.excerpt(detail, 300), ''), hint = coalesce(private.excerpt(hint, 200), '');
end
$$;
comment on function private.raise_error(text, text, text, text) is
  'API: Private. Raises one of the documented KLxxx errors (see supabase/error-codes.md); message and hint at most 200 characters, detail 300.';

-- Trims every kind of Unicode space from both ends (btrim with a character set: no regex, linear
-- time) and normalizes line breaks to LF. Callers check sizes before they clean (KL028).
create or replace function private.clean_text(content text)
returns text
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
  select btrim(replace(replace(content, E'\r\n', E'\n'), E'\r', E'\n'),
               E' \t\n\u000b\f\r\u0085\u00a0\u1680\u180e\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009'
               || E'\u200a\u200b\u2028\u2029\u202f\u205f\u3000\ufeff')
$$;
comment on function private.clean_text(text) is
  'API: Private. Trims leading and trailing Unicode whitespace and invisible spaces; CR LF and CR become LF.';

-- The first character a prompt or text input may not contain, as "U+001B at character 5", or
-- null. Refused: C0 controls except tab and line feed (CR is normalized to LF before this), DEL,
-- C1 controls, and the bidi embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069)
-- that make text display differently from what the model reads. Left alone: LRM/RLM marks.
create function private.control_character_problem(content text)
returns text
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
  select format('U+%s at character %s', upper(lpad(to_hex(ascii(substr(content, position, 1))), 4, '0')), position)
    from (select regexp_instr(content, '[\u0001-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]') as position) p
   where position > 0
$$;
comment on function private.control_character_problem(text) is
  'API: Private. The first control or bidi-override character in the text ("U+001B at character 5"), or null.';

-- A slider value in canonical form: rounded to 6 decimal places, trailing zeros dropped; null
-- when it has more than 15 digits before the decimal point.
create function private.canonical_number(value numeric)
returns numeric
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
  select case when abs(value) < 1e15 then trim_scale(round(value, 6)) end
$$;
comment on function private.canonical_number(numeric) is
  'API: Private. A number rounded to 6 decimal places without trailing zeros, or null beyond 15 integer digits.';

-- Validates the user's inputs against the field definitions and returns every field's value
-- (defaults applied; null for an optional field left empty). Raises KL005/KL006/KL007. Text is
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
  resolved jsonb := '{}'::jsonb;
begin
  inputs := coalesce(inputs, '{}');
  if jsonb_typeof(inputs) <> 'object' then
    perform private.raise_error('KL007', 'inputs must be a JSON object', format('got a JSON %s', jsonb_typeof(inputs)),
      'Send inputs as {"field_name": value, ...}.');
  end if;
  select array_agg(private.excerpt(k, 40) order by k) into unknown from jsonb_object_keys(inputs) k
   where not exists (select 1 from jsonb_array_elements(input_fields) f where f ->> 'name' = k);
  if unknown is not null then
    perform private.raise_error('KL007',
      'unknown input: ' || array_to_string(unknown[1:3], ', ') || case when cardinality(unknown) > 3 then format(' and %s more', cardinality(unknown) - 3) else '' end,
      format('this template declares: %s', (select string_agg(f ->> 'name', ', ') from jsonb_array_elements(input_fields) f)),
      'Send only the template''s declared fields.');
  end if;

  for field in select f from jsonb_array_elements(input_fields) f loop
    field_name := field ->> 'name';
    value := inputs -> field_name;
    if value is null or jsonb_typeof(value) = 'null' or (jsonb_typeof(value) = 'string' and private.clean_text(value #>> '{}') = '') then
      value := nullif(field -> 'default_value', 'null');
      if jsonb_typeof(value) = 'string' and private.clean_text(value #>> '{}') = '' then
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
