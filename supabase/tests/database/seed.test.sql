-- The seed's promises (supabase/seed.sql): enough active styles and templates to demo, every
-- field type in use, every template renderable with its defaults, and every default aspect ratio
-- accepted by the image-to-image models that would run it.
begin;
select plan(22);

-- Seeded templates are the ones with the seed's fixed ids.
create temp view seeded_templates as
  select * from public.templates where id::text like '5eed0000-0000-4000-8000-%';

-- ---------------------------------------------------------------------------------------------
-- Styles
-- ---------------------------------------------------------------------------------------------
select cmp_ok((select count(*)::integer from public.styles where is_active), '>=', 6, 'at least 6 active styles');
select is_empty($$ select key from public.styles
                    where prompt_fragment ~ '^[\s,]' or prompt_fragment ~ '[\s,.]$' $$,
  'style fragments are bare phrases (no leading comma, no trailing punctuation) so they append after a comma');
select is_empty($$ select key from public.styles where thumbnail_url is null or thumbnail_url !~ '^https://' $$,
  'every style has an https thumbnail');
select is((select count(distinct "order")::integer from public.styles), (select count(*)::integer from public.styles),
  'styles have distinct display orders');

-- ---------------------------------------------------------------------------------------------
-- Templates: catalog shape
-- ---------------------------------------------------------------------------------------------
select cmp_ok((select count(*)::integer from seeded_templates where is_active), '>=', 12, 'at least 12 active templates');
select cmp_ok((select count(distinct category)::integer from seeded_templates where is_active), '>=', 4,
  'active templates span at least 4 categories');
select set_eq(
  $$ select distinct f ->> 'type' from seeded_templates t, jsonb_array_elements(t.input_fields) f $$,
  array['text', 'select', 'slider', 'toggle'],
  'the seeded templates use all four field types');
select ok(exists (select 1 from seeded_templates where is_premium and is_active), 'at least one active premium template');
select ok(exists (select 1 from seeded_templates where max_images > 1), 'at least one template takes several photos');
select is_empty($$ select name from seeded_templates where min_images < 1 $$,
  'every seeded template needs at least one photo (they are image-to-image edits)');
select is_empty($$ select name from seeded_templates
                    where thumbnail_url is null or thumbnail_url !~ '^https://images\.kiln\.example/templates/[a-z0-9-]+\.webp$' $$,
  'every template has a placeholder https thumbnail');
select is_empty($$ select name from seeded_templates where btrim(description) = '' $$,
  'every template has a description');
select is_empty($$ select category, "order" from seeded_templates group by 1, 2 having count(*) > 1 $$,
  'display orders are distinct within a category');
select is_empty($$ select name from seeded_templates where published_at is null $$,
  'every seeded template is published');

select count(*)::integer as seeded_active from seeded_templates where is_active \gset
select tests.act_as_anon();
select is((select count(*)::integer from public.templates where id::text like '5eed0000-0000-4000-8000-%' and is_active),
  :seeded_active, 'anon can read every active seeded template');
select tests.act_as_owner();

-- ---------------------------------------------------------------------------------------------
-- Templates against the models that run them
-- ---------------------------------------------------------------------------------------------
select ok(exists (select 1 from public.models where mode = 'image-to-image' and is_active),
  'there is an active image-to-image model');
select is_empty($$ select t.name, t.default_aspect_ratio, m.key
                     from seeded_templates t
                     join public.models m on m.mode = 'image-to-image' and m.is_active
                    where not t.default_aspect_ratio = any (m.aspect_ratios) $$,
  'every default_aspect_ratio is accepted by every active image-to-image model');
select is_empty($$ select t.name, m.key
                     from seeded_templates t
                     join public.models m on m.mode = 'image-to-image' and m.is_active
                    where t.min_images > m.max_input_images $$,
  'every active image-to-image model accepts at least the photos each template requires');

-- ---------------------------------------------------------------------------------------------
-- Every template renders: once with only required fields (defaults for the rest), once with
-- every field filled.
-- ---------------------------------------------------------------------------------------------
create temp table renders (id uuid, name text, variant text, prompt text);

select lives_ok($$
  insert into renders
  select t.id, t.name, v.variant,
         private.render_template_prompt(t.prompt_template, t.input_fields,
           private.resolve_template_inputs(t.input_fields, coalesce((
             select jsonb_object_agg(f ->> 'name',
                      case f ->> 'type'
                        when 'text' then to_jsonb('a sample value'::text)
                        when 'select' then f -> 'options' -> -1
                        when 'slider' then f -> 'max'
                        else to_jsonb(not coalesce((f ->> 'default_value')::boolean, false))
                      end)
               from jsonb_array_elements(t.input_fields) f
              where v.variant = 'all fields'
                 or (coalesce((f ->> 'required')::boolean, false) and nullif(f -> 'default_value', 'null') is null)),
             '{}')))
    from seeded_templates t
   cross join (values ('required only'), ('all fields')) v (variant)
$$, 'every seeded template resolves and renders, with required fields only and with all fields');

select is((select count(*)::integer from renders), 2 * (select count(*)::integer from seeded_templates),
  'every seeded template was rendered twice');
select is_empty($$ select name, variant, prompt from renders
                    where prompt ~ '[{}]' or prompt ~ '  ' or prompt ~ ',\s*,' or prompt ~ '[\s,]$' or prompt ~ '^[\s,]'
                       or length(prompt) < 40 $$,
  'rendered prompts have no leftover braces, double spaces or dangling commas');
select is_empty($$ select r.name, r.variant, m.key
                     from renders r
                     join public.models m on m.mode = 'image-to-image' and m.is_active
                    where length(r.prompt) + 2 + (select max(length(prompt_fragment)) from public.styles where is_active)
                          > m.max_prompt_length $$,
  'every rendered prompt, even with the longest style appended, fits every image-to-image model');

select * from finish();
rollback;
