-- Why: templates are the image-to-image product. The app renders a form from `input_fields`; the
-- prompt itself is rendered here, in Postgres, from the template and validated inputs, so a
-- client can never send its own prompt for a template. The database refuses a template whose
-- definition could not be rendered (bad fields, defaults or placeholders), so every active
-- template renders (one that renders blank for some inputs is refused at start with KL012).
--
-- Field definition (one object per element of input_fields):
--   { name, label, type: text|select|slider|toggle, placeholder?, default_value?, options?,
--     min?, max?, required?, max_length? }
--   text:   optional max_length (1..2000, default 500); default_value is a string
--   select: options is a non-empty list of distinct strings; default_value is one of them
--   slider: min < max (numbers); default_value is a number within [min, max]
--   toggle: default_value is a boolean; optional options = [text when off, text when on]
--           (without options the label is rendered when on and nothing when off)
-- Placeholders are `{field_name}`; every placeholder must be a declared field.

create table public.templates (
  id uuid primary key default gen_random_uuid(),
  name text not null constraint templates_name_length check (length(btrim(name)) between 1 and 100),
  description text not null default '',
  thumbnail_url text,
  category text not null constraint templates_category_length check (length(btrim(category)) between 1 and 50),
  prompt_template text not null,
  input_fields jsonb not null default '[]',
  default_aspect_ratio text not null default '1:1'
    constraint templates_default_aspect_ratio_format check (default_aspect_ratio ~ '^(auto|[1-9][0-9]?:[1-9][0-9]?)$'),
  is_premium boolean not null default false,
  is_active boolean not null default true,
  "order" integer not null default 0,
  min_images integer not null default 1 constraint templates_min_images_range check (min_images between 0 and 10),
  max_images integer not null default 1 constraint templates_max_images_range check (max_images between 1 and 10),
  published_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint templates_image_bounds check (min_images <= max_images)
);
create index templates_listing_idx on public.templates (category, "order") where is_active;
create index templates_updated_at_idx on public.templates (updated_at);
create index templates_published_at_idx on public.templates (published_at);

comment on table public.templates is
  'Curated image-to-image templates. The app lists active ones and renders a form from input_fields; start_generation renders the prompt.';
comment on column public.templates.prompt_template is 'Prompt with {field_name} placeholders, rendered server-side from validated inputs.';
comment on column public.templates.input_fields is
  'Form fields: [{name, label, type: text|select|slider|toggle, placeholder, default_value, options, min, max, required, max_length}].';
comment on column public.templates.default_aspect_ratio is 'Aspect ratio used when the app sends none.';
comment on column public.templates.is_premium is 'Premium templates need the paid plan or better.';
comment on column public.templates.is_active is 'Inactive templates stay readable (so caches learn of the change) but cannot be used.';
comment on column public.templates."order" is 'Display order within a category (ascending).';
comment on column public.templates.min_images is 'Fewest photos the user must provide.';
comment on column public.templates.max_images is 'Most photos the user may provide (also capped by the model).';
comment on column public.templates.published_at is 'When the template first became active; drafts (never active) are hidden from clients.';
comment on column public.templates.updated_at is 'Kept by a trigger: refresh a cache with templates where updated_at > last sync.';
comment on column public.templates.id is 'Template id, passed as start_generation(template_id => ...).';
comment on column public.templates.name is 'Display name.';
comment on column public.templates.description is 'One or two sentences shown under the name.';
comment on column public.templates.thumbnail_url is 'Preview image for the catalog.';
comment on column public.templates.category is 'Catalog section (3D Render, Photo Editing, Portrait, Anime, ...).';
comment on column public.templates.created_at is 'When the row was created.';

-- ---------------------------------------------------------------------------------------------
-- Text hygiene: trims every kind of Unicode space (not only ASCII ones, which is all btrim
-- removes), so "blank" means blank for prompts and required fields alike.
-- ---------------------------------------------------------------------------------------------
create function private.clean_text(content text)
returns text
language sql immutable
set search_path = ''
as $$
  select regexp_replace(content,
    '^[\s\u00a0\u1680\u2000-\u200b\u2028\u2029\u202f\u205f\u3000\ufeff]+|[\s\u00a0\u1680\u2000-\u200b\u2028\u2029\u202f\u205f\u3000\ufeff]+$',
    '', 'g')
$$;
comment on function private.clean_text(text) is 'API: Private. Trims leading and trailing Unicode whitespace and invisible spaces.';

-- ---------------------------------------------------------------------------------------------
-- Definition validation
-- ---------------------------------------------------------------------------------------------

-- The first problem with a template definition, or null when it is valid.
create function private.template_definition_problem(prompt_template text, input_fields jsonb)
returns text
language plpgsql immutable
set search_path = ''
as $$
declare
  field jsonb;
  field_name text;
  field_type text;
  names text[] := '{}'::text[];
  extra_keys text[];
  placeholder text;
begin
  if prompt_template is null or btrim(prompt_template) = '' then
    return 'prompt_template is empty';
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
      when 'select' then
        if jsonb_typeof(field -> 'options') is distinct from 'array' or jsonb_array_length(field -> 'options') = 0
           or exists (select 1 from jsonb_array_elements(field -> 'options') o
                       where jsonb_typeof(o) <> 'string' or btrim(o #>> '{}') = '')
           or (select count(distinct o) <> count(*) from jsonb_array_elements(field -> 'options') o) then
          return format('field "%s": a select needs a non-empty list of distinct, non-blank string options', field_name);
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
  'API: Private. The first problem with a template definition (fields, defaults, placeholders), or null when valid.';

-- Security definer so that any writer (an operator, a service key) can run the private checks
-- without being granted the private schema; trigger functions cannot be called directly.
create function private.templates_validate()
returns trigger
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  problem text := private.template_definition_problem(new.prompt_template, new.input_fields);
begin
  if problem is not null then
    perform private.raise_error('KL024', 'invalid template: ' || problem,
      format('template "%s"', new.name), 'Fix the template definition; see the field definition format in the templates migration.');
  end if;
  if new.is_active and new.published_at is null then
    new.published_at := now();
  end if;
  return new;
end
$$;
comment on function private.templates_validate() is 'API: Private. Trigger: refuses invalid template definitions (KL024) and stamps published_at.';

create trigger templates_validate before insert or update on public.templates
  for each row execute function private.templates_validate();
create trigger templates_touch_updated_at before update on public.templates
  for each row execute function private.touch_updated_at();

-- ---------------------------------------------------------------------------------------------
-- Inputs and rendering
-- ---------------------------------------------------------------------------------------------

-- Validates the user's inputs against the field definitions and returns every field's value
-- (defaults applied; null for an optional field left empty). Raises KL005/KL006/KL007.
create function private.resolve_template_inputs(input_fields jsonb, inputs jsonb)
returns jsonb
language plpgsql immutable
set search_path = ''
as $$
declare
  field jsonb;
  field_name text;
  value jsonb;
  unknown text[];
  resolved jsonb := '{}'::jsonb;
begin
  inputs := coalesce(inputs, '{}');
  if jsonb_typeof(inputs) <> 'object' then
    perform private.raise_error('KL007', 'inputs must be a JSON object', format('got a JSON %s', jsonb_typeof(inputs)),
      'Send inputs as {"field_name": value, ...}.');
  end if;
  select array_agg(k order by k) into unknown from jsonb_object_keys(inputs) k
   where not exists (select 1 from jsonb_array_elements(input_fields) f where f ->> 'name' = k);
  if unknown is not null then
    perform private.raise_error('KL007', 'unknown input: ' || array_to_string(unknown, ', '),
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
      when 'select' then
        if not (field -> 'options') @> jsonb_build_array(value) or jsonb_typeof(value) <> 'string' then
          perform private.raise_error('KL006', format('invalid input: %s is not one of the options', field_name),
            format('options: %s', (select string_agg(o, ', ') from jsonb_array_elements_text(field -> 'options') o)), 'Pick one of the options.');
        end if;
      when 'slider' then
        if jsonb_typeof(value) <> 'number' then
          perform private.raise_error('KL006', format('invalid input: %s must be a number', field_name), format('got a JSON %s', jsonb_typeof(value)), null);
        end if;
        if (value #>> '{}')::numeric not between (field ->> 'min')::numeric and (field ->> 'max')::numeric then
          perform private.raise_error('KL006', format('invalid input: %s is out of range', field_name),
            format('%s is not between %s and %s', value, field -> 'min', field -> 'max'), null);
        end if;
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
  'API: Private. Validates inputs against field definitions (KL005/KL006/KL007) and returns all values with defaults applied.';

-- One field's value as prompt text.
create function private.render_field_value(field jsonb, value jsonb)
returns text
language sql immutable
set search_path = ''
as $$
  select case
    when value is null or jsonb_typeof(value) = 'null' then ''
    when field ->> 'type' = 'toggle' and field ? 'options' then
      field -> 'options' ->> (case when value::text = 'true' then 1 else 0 end)
    when field ->> 'type' = 'toggle' then case when value::text = 'true' then field ->> 'label' else '' end
    else value #>> '{}'
  end
$$;
comment on function private.render_field_value(jsonb, jsonb) is 'API: Private. Renders one resolved field value as prompt text.';

-- Renders the prompt in one pass over the template, so text a user typed is never itself
-- scanned for placeholders; then tidies the whitespace an empty optional field leaves behind.
create function private.render_template_prompt(prompt_template text, input_fields jsonb, resolved jsonb)
returns text
language plpgsql immutable
set search_path = ''
as $$
declare
  literal_parts text[] := regexp_split_to_array(prompt_template, '\{[a-z][a-z0-9_]*\}');
  placeholders text[] := array(select m[1] from regexp_matches(prompt_template, '\{([a-z][a-z0-9_]*)\}', 'g') m);
  rendered text := literal_parts[1];
begin
  for i in 1 .. coalesce(array_length(placeholders, 1), 0) loop
    rendered := rendered
      || private.render_field_value(
           (select f from jsonb_array_elements(input_fields) f where f ->> 'name' = placeholders[i]),
           resolved -> placeholders[i])
      || literal_parts[i + 1];
  end loop;
  rendered := regexp_replace(rendered, '([.!?])\s+[,;:]+', '\1', 'g');
  rendered := regexp_replace(rendered, '[ \t]+([,.;:!?])', '\1', 'g');
  rendered := regexp_replace(rendered, '([,;:])(\s*[,;:])+', '\1', 'g');
  rendered := regexp_replace(rendered, '[,;:]+([.!?])', '\1', 'g');
  rendered := regexp_replace(rendered, '[ \t]{2,}', ' ', 'g');
  return btrim(rendered, E' \t\n,;:');
end
$$;
comment on function private.render_template_prompt(text, jsonb, jsonb) is
  'API: Private. Renders a template prompt from resolved inputs in a single pass.';

-- ---------------------------------------------------------------------------------------------
-- Access: read-only for clients; drafts (never active) stay hidden. Realtime streams changes.
-- ---------------------------------------------------------------------------------------------
alter table public.templates enable row level security;
grant select on public.templates to anon, authenticated;
create policy "Anyone can read published templates" on public.templates
  for select to anon, authenticated using (published_at is not null);

-- Full replica identity so an update streams the whole template (large input_fields included).
alter table public.templates replica identity full;
alter publication supabase_realtime add table public.templates;
