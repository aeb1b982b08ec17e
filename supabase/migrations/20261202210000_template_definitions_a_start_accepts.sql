-- Why: a template definition that the check (KL024) accepted could still be one that no start
-- can use, and the refusal then named the user's input: the user was told to fix what they never
-- typed. Each of these was accepted and then refused on every start that used it:
--   - a prompt_template with a carriage return (written with CRLF line endings) or another
--     control or text-direction character: KL012, "the prompt contains a control character";
--   - a text field's default_value with such a character: KL006 for a field left empty;
--   - a select or toggle option (or a toggle's label, which it renders when on) with one: KL012
--     when chosen; a select option of only invisible characters (a zero-width space passes btrim)
--     reads as "no value": KL005 when required, the default otherwise;
--   - a slider whose min, max or default has more than 6 decimal places or 15 digits before the
--     point: slider values are rounded to 6 places before the range check, so a default of
--     0.0000001 between min 0.0000001 and 1 is read as 0 and refused (KL006), as is the max itself
--     of a slider up to 0.0000009.
-- The templates migration promises that every active template renders; the check now refuses
-- these definitions (KL024) with the rule they break. Existing rows are not re-checked until they
-- are next written.

create or replace function private.template_definition_problem(prompt_template text, input_fields jsonb)
returns text
language plpgsql immutable
set search_path = pg_catalog, pg_temp
as $$
declare
  field jsonb;
  field_name text;
  field_type text;
  names text[] := '{}'::text[];
  extra_keys text[];
  placeholder text;
  problem text;
begin
  if prompt_template is null or btrim(prompt_template) = '' then
    return 'prompt_template is empty';
  end if;
  problem := private.control_character_problem(prompt_template);
  if problem is not null then
    return format('prompt_template has a control or text-direction character (%s); write line breaks as LF', problem);
  end if;
  if jsonb_typeof(input_fields) is distinct from 'array' then
    return 'input_fields must be a JSON array';
  end if;

  for field in select value from jsonb_array_elements(input_fields) loop
    if jsonb_typeof(field) <> 'object' then
      return 'every input field must be a JSON object';
    end if;
    field_name := field ->> 'name';
    if jsonb_typeof(field -> 'name') is distinct from 'string' or field_name !~ '^[a-z][a-z0-9_]{0,39}$' then
      return format('field name %s must be a lowercase identifier (a-z, 0-9, _; at most 40 characters)', coalesce(field ->> 'name', 'null'));
    end if;
    if field_name = any (names) then
      return format('field name "%s" is declared twice', field_name);
    end if;
    names := names || field_name;

    select array_agg(k) into extra_keys from jsonb_object_keys(field) as k
     where k not in ('name', 'label', 'type', 'placeholder', 'default_value', 'options', 'min', 'max', 'required', 'max_length');
    if extra_keys is not null then
      return format('field "%s" has unknown keys: %s', field_name, array_to_string(extra_keys, ', '));
    end if;
    if jsonb_typeof(field -> 'label') is distinct from 'string' or btrim(field ->> 'label') = '' then
      return format('field "%s" needs a label', field_name);
    end if;
    if field ? 'required' and jsonb_typeof(field -> 'required') <> 'boolean' then
      return format('field "%s": required must be true or false', field_name);
    end if;
    if field ? 'placeholder' and jsonb_typeof(field -> 'placeholder') not in ('string', 'null') then
      return format('field "%s": placeholder must be a string', field_name);
    end if;

    field_type := field ->> 'type';
    if field_type is null or field_type not in ('text', 'select', 'slider', 'toggle') then
      return format('field "%s": type must be text, select, slider or toggle', field_name);
    end if;
    if field_type <> 'text' and field ? 'max_length' then
      return format('field "%s": max_length applies to text fields only', field_name);
    end if;
    if field_type not in ('select', 'toggle') and field ? 'options' then
      return format('field "%s": options apply to select and toggle fields only', field_name);
    end if;
    if field_type <> 'slider' and (field ? 'min' or field ? 'max') then
      return format('field "%s": min and max apply to slider fields only', field_name);
    end if;

    case field_type
      when 'text' then
        if field ? 'max_length' and (jsonb_typeof(field -> 'max_length') <> 'number'
            or (field ->> 'max_length')::numeric not between 1 and 2000
            or (field ->> 'max_length') !~ '^[0-9]+$') then
          return format('field "%s": max_length must be an integer from 1 to 2000', field_name);
        end if;
        if field ? 'default_value' and jsonb_typeof(field -> 'default_value') <> 'null' and (
            jsonb_typeof(field -> 'default_value') <> 'string'
            or length(field ->> 'default_value') > coalesce((field ->> 'max_length')::integer, 500)) then
          return format('field "%s": default_value must be a string within max_length', field_name);
        end if;
        if jsonb_typeof(field -> 'default_value') = 'string' then
          problem := private.control_character_problem(field ->> 'default_value');
          if problem is not null then
            return format('field "%s": default_value has a control or text-direction character (%s)', field_name, problem);
          end if;
        end if;
      when 'select' then
        if jsonb_typeof(field -> 'options') is distinct from 'array' or jsonb_array_length(field -> 'options') = 0
           or exists (select 1 from jsonb_array_elements(field -> 'options') o
                       where jsonb_typeof(o) <> 'string' or private.is_blank(o #>> '{}'))
           or (select count(distinct o) <> count(*) from jsonb_array_elements(field -> 'options') o) then
          return format('field "%s": a select needs a non-empty list of distinct, non-blank string options', field_name);
        end if;
        select format('field "%s": option %s has a control or text-direction character (%s)', field_name, o.position, p.problem)
          into problem
          from jsonb_array_elements_text(field -> 'options') with ordinality as o (option, position)
               cross join lateral (select private.control_character_problem(o.option) as problem) p
         where p.problem is not null
         order by o.position
         limit 1;
        if problem is not null then
          return problem;
        end if;
        if field ? 'default_value' and jsonb_typeof(field -> 'default_value') <> 'null'
           and not (field -> 'options') @> jsonb_build_array(field -> 'default_value') then
          return format('field "%s": default_value must be one of the options', field_name);
        end if;
      when 'slider' then
        if jsonb_typeof(field -> 'min') is distinct from 'number' or jsonb_typeof(field -> 'max') is distinct from 'number'
           or (field ->> 'min')::numeric >= (field ->> 'max')::numeric then
          return format('field "%s": a slider needs numeric min < max', field_name);
        end if;
        if private.canonical_number((field ->> 'min')::numeric) is distinct from (field ->> 'min')::numeric
           or private.canonical_number((field ->> 'max')::numeric) is distinct from (field ->> 'max')::numeric
           or (jsonb_typeof(field -> 'default_value') = 'number'
               and private.canonical_number((field ->> 'default_value')::numeric) is distinct from (field ->> 'default_value')::numeric) then
          return format('field "%s": min, max and default_value need at most 6 decimal places and 15 digits before the point', field_name);
        end if;
        if field ? 'default_value' and jsonb_typeof(field -> 'default_value') <> 'null' and (
            jsonb_typeof(field -> 'default_value') <> 'number'
            or (field ->> 'default_value')::numeric not between (field ->> 'min')::numeric and (field ->> 'max')::numeric) then
          return format('field "%s": default_value must be a number between min and max', field_name);
        end if;
      when 'toggle' then
        if field ? 'default_value' and jsonb_typeof(field -> 'default_value') not in ('boolean', 'null') then
          return format('field "%s": default_value must be true or false', field_name);
        end if;
        if field ? 'options' and (jsonb_typeof(field -> 'options') <> 'array' or jsonb_array_length(field -> 'options') <> 2
            or exists (select 1 from jsonb_array_elements(field -> 'options') o where jsonb_typeof(o) <> 'string')) then
          return format('field "%s": toggle options must be two strings, [text when off, text when on]', field_name);
        end if;
        problem := coalesce(
          (select private.control_character_problem(o) from jsonb_array_elements_text(field -> 'options') o
            where private.control_character_problem(o) is not null limit 1),
          case when not field ? 'options' then private.control_character_problem(field ->> 'label') end);
        if problem is not null then
          return format('field "%s": the text a toggle renders (%s) has a control or text-direction character (%s)',
                        field_name, case when field ? 'options' then 'options' else 'label' end, problem);
        end if;
    end case;
  end loop;

  for placeholder in select m[1] from regexp_matches(prompt_template, '\{([^{}]*)\}', 'g') as m loop
    if not placeholder = any (names) then
      return format('placeholder {%s} is not a declared field', placeholder);
    end if;
  end loop;
  if prompt_template ~ '[{}]' and regexp_replace(prompt_template, '\{[a-z][a-z0-9_]*\}', '', 'g') ~ '[{}]' then
    return 'prompt_template has an unmatched brace; braces are reserved for {field_name} placeholders';
  end if;
  return null;
end
$$;

comment on function private.template_definition_problem(text, jsonb) is
  'API: Private. The first problem with a template definition (fields, defaults, placeholders, characters a start would refuse), or null when valid.';

select private.pin_search_paths();
