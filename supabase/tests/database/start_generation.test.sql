-- start_generation and its siblings (retry_generation, cancel_generation, recent_prompts): every
-- rule and every refusal code. That a refused call writes nothing is proved over real
-- transactions in supabase/tests/integration/refusals.test.ts.
--
-- The test brings its own catalog (models, styles, templates) and plan limits, so it depends on
-- neither the shipped prices nor the seed.
begin;
select plan(125);

-- =============================================================================================
-- Fixtures (as the owner)
-- =============================================================================================
update public.plans set max_active_jobs = 1000, starts_per_minute = 1000, is_metered = true;
update public.plans set signup_credits = 10 where id = 'free';

-- Our own catalog: one active model per (mode, quality); nothing for image-to-image above fast.
update public.models set is_active = false;
insert into public.models
  (key, display_name, kie_model, mode, quality, credit_cost, min_plan, image_input_field, max_input_images, max_prompt_length, aspect_ratios)
values
  ('t-t2i-fast', 'Test T2I Fast', 'test/t2i-fast', 'text-to-image', 'fast', 1, 'free', null, 0, 60, '{1:1,16:9}'),
  ('t-t2i-std', 'Test T2I Standard', 'test/t2i-std', 'text-to-image', 'standard', 2, 'paid', null, 0, 500, '{1:1,16:9}'),
  ('t-t2i-ultra', 'Test T2I Ultra', 'test/t2i-ultra', 'text-to-image', 'ultra', 5, 'pro', null, 0, 500, '{1:1}'),
  ('t-i2i-fast', 'Test I2I Fast', 'test/i2i-fast', 'image-to-image', 'fast', 3, 'free', 'image_urls', 2, 300, '{1:1,3:4,auto}');

insert into public.styles (key, name, prompt_fragment, is_active) values
  ('t-noir', 'Test Noir', 'film noir', true),
  ('t-retired', 'Test Retired', 'retired look', false);

insert into public.templates
  (id, name, category, prompt_template, input_fields, default_aspect_ratio, is_premium, is_active, min_images, max_images)
values
  ('5a5a0000-0000-4000-8000-000000000001', 'Test Portrait', 'test',
   'Portrait of {subject} in a {setting}, intensity {intensity}, {glow}, {note}',
   '[{"name": "subject", "label": "Subject", "type": "text", "required": true, "max_length": 20},
     {"name": "setting", "label": "Setting", "type": "select", "options": ["forest", "city"], "default_value": "city"},
     {"name": "intensity", "label": "Intensity", "type": "slider", "min": 1, "max": 10, "default_value": 5},
     {"name": "glow", "label": "Glow", "type": "toggle", "options": ["matte", "glowing"], "default_value": false},
     {"name": "note", "label": "Note", "type": "text"}]',
   '3:4', false, true, 1, 3),
  ('5a5a0000-0000-4000-8000-000000000002', 'Test Premium', 'test', 'Premium portrait', '[]', '1:1', true, true, 1, 1),
  ('5a5a0000-0000-4000-8000-000000000003', 'Test Retired', 'test', 'Retired portrait', '[]', '1:1', false, false, 1, 1),
  ('5a5a0000-0000-4000-8000-000000000004', 'Test Wide', 'test', 'Wide shot', '[]', '21:9', false, true, 1, 1);

do $$
declare
  who text;
begin
  foreach who in array array['sg_free', 'sg_paid', 'sg_pro', 'sg_other', 'sg_poor', 'sg_limits', 'sg_recent'] loop
    perform tests.create_supabase_user(who);
  end loop;
  -- Operators act as the service role.
  perform tests.authenticate_as_service_role();
  perform public.set_plan(tests.get_supabase_uid('sg_paid'), 'paid');
  perform public.set_plan(tests.get_supabase_uid('sg_pro'), 'pro');
  foreach who in array array['sg_free', 'sg_paid', 'sg_pro', 'sg_other', 'sg_limits', 'sg_recent'] loop
    perform public.grant_credits(tests.get_supabase_uid(who), 190, 'test credits');
  end loop;
  perform public.grant_credits(tests.get_supabase_uid('sg_poor'), -9, 'test: leave one credit');
  perform tests.act_as_owner();
end
$$;

-- Jobs returned by the calls under test, by label.
create temp table results (label text primary key, job public.generation_jobs not null);
grant all on results to public;

-- =============================================================================================
-- KL001: no signed-in user
-- =============================================================================================
-- The authenticated role with a token that names no user.
do $$
begin
  perform set_config('role', 'authenticated', true);
  perform set_config('request.jwt.claims', '{"role": "authenticated"}', true);
end
$$;
select * from tests.refused($$ select public.start_generation(prompt => 'a cat') $$, 'KL001', 'start_generation without a user: KL001');
select * from tests.refused($$ select public.retry_generation(gen_random_uuid()) $$, 'KL001', 'retry_generation without a user: KL001');
select * from tests.refused($$ select public.cancel_generation(gen_random_uuid()) $$, 'KL001', 'cancel_generation without a user: KL001');
select * from tests.refused($$ select * from public.recent_prompts(10) $$, 'KL001', 'recent_prompts without a user: KL001');
select * from tests.refused($$ select public.delete_generation(gen_random_uuid()) $$, 'KL001', 'delete_generation without a user: KL001');

-- =============================================================================================
-- KL002: the request's shape
-- =============================================================================================
select tests.authenticate_as('sg_free');
select * from tests.refused($$ select public.start_generation() $$, 'KL002', 'neither prompt nor template_id: KL002');
select * from tests.refused(
  $$ select public.start_generation(prompt => 'a cat', template_id => '5a5a0000-0000-4000-8000-000000000001',
                                    inputs => '{"subject": "a cat"}', image_urls => array['https://img.test/a.png']) $$,
  'KL002', 'both prompt and template_id: KL002');
select * from tests.refused(
  $$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-000000000001', inputs => '{"subject": "a cat"}',
                                    image_urls => array['https://img.test/a.png'], negative_prompt => 'blurry') $$,
  'KL002', 'negative_prompt with a template: KL002');
select * from tests.refused($$ select public.start_generation(prompt => 'a cat', inputs => '{"subject": "a cat"}') $$,
  'KL002', 'inputs with a prompt: KL002');

-- =============================================================================================
-- Text-to-image: the happy path and its defaults
-- =============================================================================================
insert into results select 'fox', j from public.start_generation(prompt => '  a red fox  ') j;
select results_eq(
  $$ select (job).user_id, (job).mode, (job).prompt, (job).template_id, (job).style, (job).aspect_ratio, (job).quality,
            (job).model_key, (job).credits_charged, (job).status, (job).stage, (job).image_count, (job).result_urls,
            (job).input_image_urls, (job).retry_of, (job).completed_at
       from results where label = 'fox' $$,
  $$ values (tests.get_supabase_uid('sg_free'), 'text-to-image'::text, 'a red fox'::text, null::uuid, null::text, '1:1'::text,
             'fast'::text, 't-t2i-fast'::text, 1, 'pending'::text, 'queued'::text, 1, '{}'::text[], '{}'::text[], null::uuid,
             null::timestamptz) $$,
  'a prompt starts a pending, queued text-to-image job on the fast model, 1:1, trimmed prompt, price charged');
select is((select count(*)::integer from public.generation_jobs where id = (select (job).id from results where label = 'fox')), 1,
  'the returned job is stored and readable by its owner');
select results_eq(
  $$ select kind, amount, balance_after, job_id from public.credit_ledger
      where user_id = tests.get_supabase_uid('sg_free') order by id desc limit 1 $$,
  $$ select 'debit'::text, -1, 199, (job).id from results where label = 'fox' $$,
  'the job''s debit is the newest ledger entry, naming the job, with the balance after it');
select is((select credits from public.profiles where id = tests.get_supabase_uid('sg_free')), 199, 'the balance went down by the price');

insert into results select 'fox-noir', j
  from public.start_generation(prompt => 'a red fox', style => 't-noir', aspect_ratio => '16:9', negative_prompt => 'blurry') j;
select results_eq(
  $$ select (job).prompt, (job).style, (job).aspect_ratio, (job).negative_prompt, (job).model_key, (job).credits_charged
       from results where label = 'fox-noir' $$,
  $$ values ('a red fox, film noir'::text, 't-noir'::text, '16:9'::text, 'blurry'::text, 't-t2i-fast'::text, 1) $$,
  'a style appends its fragment after a comma; aspect ratio and negative prompt are kept');
select is((select (job).request from results where label = 'fox-noir'),
  '{"prompt": "a red fox", "style": "t-noir", "quality": "fast", "aspect_ratio": "16:9", "negative_prompt": "blurry"}'::jsonb,
  'the request is stored as the app sent it (retry replays it)');

-- =============================================================================================
-- Quality, model and plan gates (free user)
-- =============================================================================================
select * from tests.refused($$ select public.start_generation(prompt => 'a cat', quality => 'best') $$,
  'KL008', 'unknown quality: KL008');
select * from tests.refused($$ select public.start_generation(prompt => 'a cat', quality => 'standard') $$,
  'KL004', 'a paid model on the free plan: KL004');
select * from tests.refused($$ select public.start_generation(prompt => 'a cat', quality => 'ultra') $$,
  'KL004', 'a pro model on the free plan: KL004');
select * from tests.refused(
  $$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-000000000001', inputs => '{"subject": "a cat"}',
                                    image_urls => array['https://img.test/a.png'], quality => 'standard') $$,
  'KL009', 'no active image-to-image model at standard quality: KL009');

-- =============================================================================================
-- Text-to-image refusals: aspect ratio, lengths, blank prompt, images, style
-- =============================================================================================
select * from tests.refused($$ select public.start_generation(prompt => 'a cat', aspect_ratio => '2:1') $$,
  'KL010', 'an aspect ratio the model does not accept: KL010');
-- The fast test model accepts 60 characters: 55 fit, 55 plus ", film noir" (66) do not.
select * from tests.refused($$ select public.start_generation(prompt => repeat('a', 55), style => 't-noir') $$,
  'KL011', 'prompt plus style fragment over the model''s limit: KL011');
select * from tests.refused($$ select public.start_generation(prompt => repeat('a', 61)) $$,
  'KL011', 'prompt over the model''s limit: KL011');
select * from tests.refused($$ select public.start_generation(prompt => 'a cat', negative_prompt => repeat('b', 61)) $$,
  'KL011', 'negative prompt over the model''s limit: KL011');
insert into results select 'long', j from public.start_generation(prompt => repeat('a', 60)) j;
select is((select length((job).prompt) from results where label = 'long'), 60, 'a prompt of exactly the limit is accepted');
select * from tests.refused($$ select public.start_generation(prompt => '   ') $$, 'KL012', 'blank prompt: KL012');
select * from tests.refused($$ select public.start_generation(prompt => '') $$, 'KL012', 'empty prompt: KL012');
select * from tests.refused($$ select public.start_generation(prompt => 'a cat', image_urls => array['https://img.test/a.png']) $$,
  'KL013', 'images for text-to-image: KL013');
select * from tests.refused($$ select public.start_generation(prompt => 'a cat', style => 'no-such-style') $$,
  'KL015', 'unknown style: KL015');
select * from tests.refused($$ select public.start_generation(prompt => 'a cat', style => 't-retired') $$,
  'KL015', 'inactive style: KL015');

-- =============================================================================================
-- Templates (image-to-image)
-- =============================================================================================
select * from tests.refused(
  $$ select public.start_generation(template_id => gen_random_uuid(), image_urls => array['https://img.test/a.png']) $$,
  'KL003', 'unknown template: KL003');
select * from tests.refused(
  $$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-000000000003', image_urls => array['https://img.test/a.png']) $$,
  'KL003', 'inactive template: KL003');
select * from tests.refused(
  $$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-000000000002', image_urls => array['https://img.test/a.png']) $$,
  'KL004', 'premium template on the free plan: KL004');
select * from tests.refused(
  $$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-000000000001', image_urls => array['https://img.test/a.png']) $$,
  'KL005', 'required field missing: KL005');
select * from tests.refused(
  $$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-000000000001', inputs => '{"subject": "   "}',
                                    image_urls => array['https://img.test/a.png']) $$,
  'KL005', 'required field blank: KL005');
select * from tests.refused(
  $$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-000000000001',
                                    inputs => '{"subject": "a cat", "setting": "ocean"}', image_urls => array['https://img.test/a.png']) $$,
  'KL006', 'select value not among the options: KL006');
select * from tests.refused(
  $$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-000000000001',
                                    inputs => '{"subject": "a cat", "intensity": 11}', image_urls => array['https://img.test/a.png']) $$,
  'KL006', 'slider out of range: KL006');
select * from tests.refused(
  $$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-000000000001',
                                    inputs => '{"subject": "a cat", "intensity": "5"}', image_urls => array['https://img.test/a.png']) $$,
  'KL006', 'slider given a string: KL006');
select * from tests.refused(
  $$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-000000000001',
                                    inputs => '{"subject": "a cat", "glow": "yes"}', image_urls => array['https://img.test/a.png']) $$,
  'KL006', 'toggle given a string: KL006');
select * from tests.refused(
  $$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-000000000001',
                                    inputs => jsonb_build_object('subject', repeat('x', 21)), image_urls => array['https://img.test/a.png']) $$,
  'KL006', 'text longer than its max_length: KL006');
select * from tests.refused(
  $$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-000000000001',
                                    inputs => '{"subject": "a cat", "bogus": 1}', image_urls => array['https://img.test/a.png']) $$,
  'KL007', 'undeclared input: KL007');
select * from tests.refused(
  $$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-000000000001',
                                    inputs => '["a cat"]', image_urls => array['https://img.test/a.png']) $$,
  'KL007', 'inputs not a JSON object: KL007');
select * from tests.refused(
  $$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-000000000001', inputs => '{"subject": "a cat"}',
                                    image_urls => array['http://img.test/a.png']) $$,
  'KL013', 'a plain http image URL: KL013');
select * from tests.refused(
  $$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-000000000001', inputs => '{"subject": "a cat"}',
                                    image_urls => array['https://img.test/a b.png']) $$,
  'KL013', 'an image URL with whitespace: KL013');
select * from tests.refused(
  $$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-000000000001', inputs => '{"subject": "a cat"}',
                                    image_urls => array['/storage/a.png']) $$,
  'KL013', 'a relative image URL: KL013');
select * from tests.refused(
  $$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-000000000001', inputs => '{"subject": "a cat"}',
                                    image_urls => array['https://img.test/' || repeat('a', 2040)]) $$,
  'KL013', 'an image URL over 2048 characters: KL013');
select * from tests.refused(
  $$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-000000000001', inputs => '{"subject": "a cat"}',
                                    image_urls => array['https://localhost/a.png']) $$,
  'KL013', 'an image URL with a host name without a dot: KL013');
select * from tests.refused(
  $$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-000000000001', inputs => '{"subject": "a cat"}',
                                    image_urls => array['https://img.test"<x>/a.png']) $$,
  'KL013', 'an image URL with quotes and angle brackets in the host: KL013');
select * from tests.refused(
  $$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-000000000001', inputs => '{"subject": "a cat"}',
                                    image_urls => array['https://./a.png']) $$,
  'KL013', 'an image URL with an empty host label: KL013');
select * from tests.refused(
  $$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-000000000001', inputs => '{"subject": "a cat"}') $$,
  'KL014', 'fewer images than the template needs: KL014');
-- The template takes up to 3, the model only 2.
select * from tests.refused(
  $$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-000000000001', inputs => '{"subject": "a cat"}',
                                    image_urls => array['https://img.test/a.png', 'https://img.test/b.png', 'https://img.test/c.png']) $$,
  'KL014', 'more images than the model accepts: KL014');
select * from tests.refused(
  $$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-000000000004', image_urls => array['https://img.test/a.png']) $$,
  'KL010', 'a template default aspect ratio the model does not accept: KL010');
select * from tests.refused(
  $$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-000000000001', inputs => '{"subject": "a cat"}',
                                    image_urls => array['https://img.test/a.png'], aspect_ratio => '16:9') $$,
  'KL010', 'an explicit aspect ratio the image model does not accept: KL010');

insert into results select 'portrait', j
  from public.start_generation(template_id => '5a5a0000-0000-4000-8000-000000000001', inputs => '{"subject": "a knight"}',
                               image_urls => array['https://img.test/a.png']) j;
select results_eq(
  $$ select (job).mode, (job).template_id, (job).prompt, (job).inputs, (job).input_image_urls, (job).aspect_ratio,
            (job).model_key, (job).credits_charged, (job).status, (job).stage
       from results where label = 'portrait' $$,
  $$ values ('image-to-image'::text, '5a5a0000-0000-4000-8000-000000000001'::uuid,
             'Portrait of a knight in a city, intensity 5, matte'::text,
             '{"subject": "a knight", "setting": "city", "intensity": 5, "glow": false, "note": null}'::jsonb,
             array['https://img.test/a.png'], '3:4'::text, 't-i2i-fast'::text, 3, 'pending'::text, 'queued'::text) $$,
  'a template renders its prompt server-side with defaults, takes its default aspect ratio and the image model''s price');

insert into results select 'portrait-full', j
  from public.start_generation(template_id => '5a5a0000-0000-4000-8000-000000000001',
                               inputs => '{"subject": "a knight", "setting": "forest", "intensity": 8, "glow": true, "note": "at dusk"}',
                               image_urls => array['https://img.test/a.png', 'https://img.test/b.png'],
                               aspect_ratio => 'auto', style => 't-noir') j;
select results_eq(
  $$ select (job).prompt, (job).aspect_ratio, cardinality((job).input_image_urls) from results where label = 'portrait-full' $$,
  $$ values ('Portrait of a knight in a forest, intensity 8, glowing, at dusk, film noir'::text, 'auto'::text, 2) $$,
  'every field rendered, style fragment appended, explicit aspect ratio kept, two images');
select is((select credits from public.profiles where id = tests.get_supabase_uid('sg_free')), 199 - 1 - 1 - 3 - 3,
  'every accepted start so far was charged its model''s price');

-- =============================================================================================
-- Paid and pro plans
-- =============================================================================================
select tests.authenticate_as('sg_paid');
insert into results select 'paid-standard', j from public.start_generation(prompt => 'a cat', quality => 'standard') j;
select results_eq($$ select (job).model_key, (job).credits_charged, (job).quality from results where label = 'paid-standard' $$,
  $$ values ('t-t2i-std'::text, 2, 'standard'::text) $$, 'the paid plan reaches the standard model at its price');
select * from tests.refused($$ select public.start_generation(prompt => 'a cat', quality => 'ultra') $$,
  'KL004', 'a pro model on the paid plan: KL004');
insert into results select 'paid-premium', j
  from public.start_generation(template_id => '5a5a0000-0000-4000-8000-000000000002', image_urls => array['https://img.test/a.png']) j;
select is((select (job).prompt from results where label = 'paid-premium'), 'Premium portrait', 'the paid plan reaches premium templates');

select tests.authenticate_as('sg_pro');
insert into results select 'pro-ultra', j from public.start_generation(prompt => 'a cat', quality => 'ultra') j;
select results_eq($$ select (job).model_key, (job).credits_charged from results where label = 'pro-ultra' $$,
  $$ values ('t-t2i-ultra'::text, 5) $$, 'the pro plan reaches the ultra model at its price');
select is((select credits from public.profiles where id = tests.get_supabase_uid('sg_pro')), 195, 'the pro user was charged 5');

-- =============================================================================================
-- KL016: moderation
-- =============================================================================================
select tests.act_as_owner();
insert into private.blocked_terms (term, reason) values ('forbidden thing', 'test'), ('noir', 'test');
select tests.authenticate_as('sg_free');
select * from tests.refused($$ select public.start_generation(prompt => 'a FORBIDDEN   thing at night') $$,
  'KL016', 'a blocked phrase in the prompt (any case, any spacing): KL016');
select * from tests.refused($$ select public.start_generation(prompt => 'a cat', negative_prompt => 'no forbidden thing') $$,
  'KL016', 'a blocked phrase in the negative prompt: KL016');
select * from tests.refused(
  $$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-000000000001', inputs => '{"subject": "forbidden thing"}',
                                    image_urls => array['https://img.test/a.png']) $$,
  'KL016', 'a blocked phrase in a template text input: KL016');
select * from tests.refused($$ select public.start_generation(prompt => 'a cat', style => 't-noir') $$,
  'KL016', 'a blocked word in the style fragment: KL016');
select lives_ok($$ select public.start_generation(prompt => 'a forbidden thingamajig') $$,
  'blocked terms match whole words only');
select tests.act_as_owner();
delete from private.blocked_terms where term in ('forbidden thing', 'noir');

-- =============================================================================================
-- Idempotency (KL019, KL027)
-- =============================================================================================
select tests.authenticate_as('sg_free');
insert into results select 'idem', j from public.start_generation(prompt => 'idem fox', idempotency_key => 'key-1') j;
select tests.footprint('sg_free') as footprint_after_first \gset
select is((select id from public.start_generation(prompt => 'idem fox', idempotency_key => 'key-1')),
  (select (job).id from results where label = 'idem'), 'the same key with the same parameters returns the same job');
select is((select id from public.start_generation(prompt => 'idem fox', quality => 'fast', idempotency_key => 'key-1')),
  (select (job).id from results where label = 'idem'), 'an explicit default quality is the same parameters');
select is(tests.footprint('sg_free'), :'footprint_after_first', 'replays create no job and debit nothing');
select * from tests.refused($$ select public.start_generation(prompt => 'another fox', idempotency_key => 'key-1') $$,
  'KL019', 'the same key with another prompt: KL019');
select * from tests.refused($$ select public.start_generation(prompt => 'idem fox', aspect_ratio => '16:9', idempotency_key => 'key-1') $$,
  'KL019', 'the same key with another aspect ratio: KL019');
select * from tests.refused($$ select public.start_generation(prompt => 'idem fox', idempotency_key => '  ') $$,
  'KL027', 'a blank idempotency key: KL027');
select * from tests.refused($$ select public.start_generation(prompt => 'idem fox', idempotency_key => repeat('k', 201)) $$,
  'KL027', 'an idempotency key over 200 characters: KL027');
select tests.authenticate_as('sg_other');
insert into results select 'idem-other', j from public.start_generation(prompt => 'idem fox', idempotency_key => 'key-1') j;
select isnt((select (job).id from results where label = 'idem-other'), (select (job).id from results where label = 'idem'),
  'keys belong to one user: another user''s same key is a new job');

-- =============================================================================================
-- KL020: insufficient credits (sg_poor has 1 credit)
-- =============================================================================================
select tests.authenticate_as('sg_poor');
select * from tests.refused(
  $$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-000000000001', inputs => '{"subject": "a cat"}',
                                    image_urls => array['https://img.test/a.png']) $$,
  'KL020', 'a price above the balance: KL020');
insert into results select 'poor', j from public.start_generation(prompt => 'a cheap cat') j;
select results_eq(
  $$ select p.credits, l.kind, l.amount, l.balance_after from public.profiles p
       join lateral (select * from public.credit_ledger where user_id = p.id order by id desc limit 1) l on true
      where p.id = tests.get_supabase_uid('sg_poor') $$,
  $$ values (0, 'debit'::text, -1, 0) $$,
  'a price equal to the balance is accepted and leaves exactly zero');
select * from tests.refused($$ select public.start_generation(prompt => 'a cheap cat') $$,
  'KL020', 'an empty balance: KL020');

-- =============================================================================================
-- KL017 / KL018: the plan's limits
-- =============================================================================================
select tests.act_as_owner();
update public.plans set max_active_jobs = 2 where id = 'free';
select tests.authenticate_as('sg_limits');
insert into results select 'limit-1', j from public.start_generation(prompt => 'limit one') j;
insert into results select 'limit-2', j from public.start_generation(prompt => 'limit two') j;
select * from tests.refused($$ select public.start_generation(prompt => 'limit three') $$,
  'KL017', 'max_active_jobs pending jobs already: KL017');
select lives_ok($$ select public.cancel_generation((select (job).id from results where label = 'limit-1')) $$,
  'cancelling a job frees its slot');
insert into results select 'limit-3', j from public.start_generation(prompt => 'limit three') j;
select is((select (job).status from results where label = 'limit-3'), 'pending', 'a start fits again after a cancellation');
select tests.act_as_owner();
update public.plans set max_active_jobs = 1000, starts_per_minute = 3 where id = 'free';
select tests.authenticate_as('sg_limits');
select * from tests.refused($$ select public.start_generation(prompt => 'limit four') $$,
  'KL018', 'starts_per_minute starts in the last minute (cancelled ones count): KL018');
select tests.act_as_owner();
update public.plans set starts_per_minute = 1000 where id = 'free';

-- =============================================================================================
-- cancel_generation (KL021, KL023)
-- =============================================================================================
select tests.authenticate_as('sg_free');
select credits as credits_before_cancel from public.profiles where id = tests.get_supabase_uid('sg_free') \gset
insert into results select 'fox-cancelled', j from public.cancel_generation((select (job).id from results where label = 'fox')) j;
select results_eq(
  $$ select (job).id = (select (job).id from results where label = 'fox'), (job).status, (job).stage, (job).error_code,
            (job).error_message is not null, (job).completed_at is not null
       from results where label = 'fox-cancelled' $$,
  $$ values (true, 'failed'::text, 'cancelled'::text, 'cancelled'::text, true, true) $$,
  'a queued job is cancelled: failed, error_code cancelled, with a message and completed_at');
select results_eq(
  $$ select kind, amount, balance_after from public.credit_ledger
      where job_id = (select (job).id from results where label = 'fox') order by id $$,
  format($$ values ('debit'::text, -1, 199), ('refund'::text, 1, %s) $$, :credits_before_cancel + 1),
  'the cancelled job has its debit and exactly one refund, chained to the balance');
select is((select credits from public.profiles where id = tests.get_supabase_uid('sg_free')), :credits_before_cancel + 1,
  'the charge came back');
select * from tests.refused($$ select public.cancel_generation((select (job).id from results where label = 'fox')) $$,
  'KL023', 'cancelling a cancelled job: KL023, no second refund');
select * from tests.refused($$ select public.cancel_generation(gen_random_uuid()) $$,
  'KL021', 'cancelling an unknown job: KL021');
select tests.authenticate_as('sg_other');
select * from tests.refused($$ select public.cancel_generation((select (job).id from results where label = 'fox-noir')) $$,
  'KL021', 'cancelling another user''s job: KL021, the job and its owner untouched');
select tests.act_as_owner();
-- Read the table, not the row captured when the job was created.
select results_eq(
  $$ select status, stage, error_code from public.generation_jobs where id = (select (job).id from results where label = 'fox-noir') $$,
  $$ values ('pending'::text, 'queued'::text, null::text) $$,
  'the other user''s job is still pending and queued');

-- =============================================================================================
-- retry_generation (KL020, KL021, KL022)
-- =============================================================================================
select tests.authenticate_as('sg_free');
select credits as credits_before_retry from public.profiles where id = tests.get_supabase_uid('sg_free') \gset
insert into results select 'fox-retry', j from public.retry_generation((select (job).id from results where label = 'fox')) j;
select results_eq(
  $$ select (job).retry_of, (job).prompt, (job).style, (job).aspect_ratio, (job).quality, (job).model_key, (job).request,
            (job).credits_charged, (job).status, (job).stage
       from results where label = 'fox-retry' $$,
  $$ select (job).id, (job).prompt, (job).style, (job).aspect_ratio, (job).quality, (job).model_key, (job).request,
            1, 'pending'::text, 'queued'::text
       from results where label = 'fox' $$,
  'a retry is a new pending job with the failed job''s parameters, linked by retry_of');
select isnt((select (job).id from results where label = 'fox-retry'), (select (job).id from results where label = 'fox'),
  'the retry is a new job');
select results_eq(
  $$ select kind, amount, balance_after from public.credit_ledger where job_id = (select (job).id from results where label = 'fox-retry') $$,
  format($$ values ('debit'::text, -1, %s) $$, :credits_before_retry - 1),
  'the retry is charged again with its own debit');
select tests.footprint('sg_free') as footprint_after_retry \gset
select is((select id from public.retry_generation((select (job).id from results where label = 'fox'))),
  (select (job).id from results where label = 'fox-retry'), 'retrying twice returns the same retry');
select is(tests.footprint('sg_free'), :'footprint_after_retry', 'the second retry creates and charges nothing');
select * from tests.refused($$ select public.retry_generation((select (job).id from results where label = 'fox-noir')) $$,
  'KL022', 'retrying a pending job: KL022');
select * from tests.refused($$ select public.retry_generation(gen_random_uuid()) $$,
  'KL021', 'retrying an unknown job: KL021');
select tests.authenticate_as('sg_other');
select * from tests.refused($$ select public.retry_generation((select (job).id from results where label = 'fox')) $$,
  'KL021', 'retrying another user''s job: KL021');

-- sg_poor: cancel its job (refund: 1 credit), lose that credit, then retry with nothing left.
select tests.authenticate_as('sg_poor');
select lives_ok($$ select public.cancel_generation((select (job).id from results where label = 'poor')) $$, 'sg_poor cancels its job');
select tests.authenticate_as_service_role();
select lives_ok($$ select public.grant_credits(tests.get_supabase_uid('sg_poor'), -1, 'test: spend the refund') $$,
  'an operator adjusts sg_poor back to zero');
select tests.authenticate_as('sg_poor');
select * from tests.refused($$ select public.retry_generation((select (job).id from results where label = 'poor')) $$,
  'KL020', 'retrying without the credits: KL020');

-- =============================================================================================
-- recent_prompts (KL025)
-- =============================================================================================
select tests.authenticate_as('sg_recent');
insert into results select 'recent-1', j from public.start_generation(prompt => 'sunset over the sea', style => 't-noir') j;
insert into results select 'recent-2', j from public.start_generation(prompt => 'a quiet forest') j;
insert into results select 'recent-3', j from public.start_generation(prompt => 'sunset over the sea', aspect_ratio => '16:9') j;
insert into results select 'recent-template', j
  from public.start_generation(template_id => '5a5a0000-0000-4000-8000-000000000001', inputs => '{"subject": "a cat"}',
                               image_urls => array['https://img.test/a.png']) j;
-- One transaction has one now(): spread the jobs in time as the owner.
select tests.act_as_owner();
update public.generation_jobs j set created_at = now() - r.age
  from (values ('recent-1', interval '3 minutes'), ('recent-2', interval '2 minutes'), ('recent-3', interval '1 minute'),
               ('recent-template', interval '30 seconds')) r (label, age)
 where j.id = (select (job).id from results where results.label = r.label);
select tests.authenticate_as('sg_recent');
select results_eq(
  $$ select prompt, style, quality, aspect_ratio, last_used_at from public.recent_prompts(10) $$,
  $$ values ('sunset over the sea'::text, null::text, 'fast'::text, '16:9'::text, now() - interval '1 minute'),
            ('a quiet forest'::text, null::text, 'fast'::text, '1:1'::text, now() - interval '2 minutes') $$,
  'recent_prompts: distinct text-to-image prompts as sent, newest use first, with that use''s settings');
select results_eq($$ select prompt from public.recent_prompts(1) $$, $$ values ('sunset over the sea'::text) $$,
  'recent_prompts honours its limit');
select results_eq($$ select count(*)::integer from public.recent_prompts() $$, $$ values (2) $$,
  'recent_prompts has a default limit');
select * from tests.refused($$ select * from public.recent_prompts(0) $$, 'KL025', 'recent_prompts limit 0: KL025');
select * from tests.refused($$ select * from public.recent_prompts(101) $$, 'KL025', 'recent_prompts limit 101: KL025');
select * from tests.refused($$ select * from public.recent_prompts(null) $$, 'KL025', 'recent_prompts limit null: KL025');
select tests.authenticate_as('sg_other');
select is_empty($$ select 1 from public.recent_prompts(100) where prompt in ('sunset over the sea', 'a quiet forest') $$,
  'recent_prompts shows only my own prompts');
-- Recent means among the latest 1,000 text-to-image jobs: 1,000 newer ones push the others out.
select tests.act_as_owner();
insert into public.generation_jobs (user_id, mode, prompt, status, stage, aspect_ratio, model_key, quality, credits_charged,
                                    request, request_fingerprint, completed_at)
select tests.get_supabase_uid('sg_recent'), 'text-to-image', 'a filler prompt', 'completed', 'completed', '1:1',
       (select model_key from public.generation_jobs where id = (select (job).id from results where label = 'recent-2')),
       'fast', 0, '{"prompt": "a filler prompt"}', 'filler', now()
  from generate_series(1, 1000);
select tests.authenticate_as('sg_recent');
select results_eq($$ select prompt from public.recent_prompts(100) $$, $$ values ('a filler prompt'::text) $$,
  'recent_prompts reads the latest 1,000 text-to-image jobs only');

-- =============================================================================================
-- Details: model photo minimum, style joining, null inputs, symbol terms, refund guard
-- =============================================================================================
select tests.act_as_owner();
update public.models set min_input_images = 1 where key = 't-i2i-fast';
insert into public.templates (id, name, category, prompt_template, input_fields, min_images, max_images)
values ('5a5a0000-0000-4000-8000-000000000005', 'Test Optional Photo', 'test', 'A calm lake at dawn.', '[]', 0, 2);
insert into private.blocked_terms (term, reason) values ('c++', 'test');
select tests.authenticate_as('sg_free');
select * from tests.refused(
  $$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-000000000005') $$,
  'KL014', 'a template that takes no photo still needs the model''s minimum: KL014');
insert into results select 'style-after-sentence', j
  from public.start_generation(template_id => '5a5a0000-0000-4000-8000-000000000005',
                               image_urls => array['https://img.test/a.png'], style => 't-noir') j;
select is((select (job).prompt from results where label = 'style-after-sentence'), 'A calm lake at dawn, film noir',
  'a style fragment joins a prompt that ends a sentence without leaving ".,"');
select * from tests.refused(
  $$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-000000000001',
                                    inputs => '{"subject": "a cat", "mystery": null}', image_urls => array['https://img.test/a.png']) $$,
  'KL007', 'an undeclared input is refused even when its value is null: KL007');
select * from tests.refused($$ select public.start_generation(prompt => 'a robot coding c++ at night') $$,
  'KL016', 'a blocked term with symbols at its edge still matches: KL016');
select lives_ok($$ select public.start_generation(prompt => 'a c sharp tutorial poster') $$,
  'a term with symbols does not match its letters alone');
select tests.act_as_owner();
select throws_ok(
  format('select private.refund_job(%L, %L)', (select (job).id from results where label = 'style-after-sentence'), 'test'),
  'KL031', null, 'refund_job refuses a job that has not failed: KL031');
insert into private.blocked_terms (term, reason) values ('nude', 'test');
insert into public.templates (id, name, category, prompt_template, input_fields, min_images, max_images)
values ('5a5a0000-0000-4000-8000-000000000006', 'Test Only Optional', 'test', '{note}',
        '[{"name": "note", "label": "Note", "type": "text"}]', 1, 1);
select tests.authenticate_as('sg_free');
select * from tests.refused($$ select public.start_generation(prompt => E'\u00a0\u3000\n\t\u200b') $$,
  'KL012', 'a prompt of Unicode spaces is blank: KL012');
select * from tests.refused(
  $$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-000000000001', inputs => '{"subject": "\u00a0\n"}',
                                    image_urls => array['https://img.test/a.png']) $$,
  'KL005', 'a required text field filled with Unicode spaces is missing: KL005');
select * from tests.refused(
  $$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-000000000006', image_urls => array['https://img.test/a.png']) $$,
  'KL012', 'a template that renders blank with these inputs: KL012');
insert into results select 'padded', j from public.start_generation(prompt => E'  a heron  ' || repeat(' ', 1000), negative_prompt => E' \u00a0') j;
select results_eq($$ select (job).prompt, (job).request ->> 'prompt', (job).negative_prompt from results where label = 'padded' $$,
  $$ values ('a heron'::text, 'a heron'::text, null::text) $$,
  'prompts are stored and fingerprinted trimmed; a blank negative prompt is none');
select * from tests.refused($$ select public.start_generation(prompt => 'a cat ' || repeat('x', 70000)) $$,
  'KL028', 'a request over 64 KiB: KL028');
select * from tests.refused($$ select public.start_generation(prompt => E'a \uff4e\uff55\uff44\uff45 statue') $$,
  'KL016', 'fullwidth letters are normalized before matching: KL016');
select * from tests.refused($$ select public.start_generation(prompt => E'a nu\u00adde statue') $$,
  'KL016', 'a soft hyphen cannot split a blocked word: KL016');
select * from tests.refused($$ select public.start_generation(prompt => 'a nude_2 statue') $$,
  'KL016', 'underscores and digits separate words: KL016');
select lives_ok($$ select public.start_generation(prompt => 'a denuded hillside') $$,
  'a blocked word inside a longer word does not match');
insert into results select 'plain-key', j from public.start_generation(prompt => 'an owl', idempotency_key => 'same-as-omitted') j;
select is((select id from public.start_generation(prompt => 'an owl', inputs => '{}', image_urls => '{}', idempotency_key => 'same-as-omitted')),
  (select (job).id from results where label = 'plain-key'), 'empty inputs and image lists fingerprint like omitted ones');
select lives_ok(
  $$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-000000000001', inputs => '{"subject": "a cat"}',
                                    image_urls => array['https://CDN.Img.test:8443/u/1/Photo.PNG?sig=a%2Fb#x']) $$,
  'an https URL with port, query and fragment in any case is accepted');
select tests.act_as_owner();
delete from private.blocked_terms where term in ('c++', 'nude');
update public.models set min_input_images = 0 where key = 't-i2i-fast';

-- =============================================================================================
-- Every balance still equals its ledger
-- =============================================================================================
select tests.act_as_owner();
select is_empty(
  $$ select p.id from public.profiles p
      where p.id in (select tests.get_supabase_uid(u) from unnest(array['sg_free', 'sg_paid', 'sg_pro', 'sg_other', 'sg_poor', 'sg_limits', 'sg_recent']) u)
        and p.credits <> (select coalesce(sum(amount), 0) from public.credit_ledger l where l.user_id = p.id) $$,
  'every test user''s balance equals the sum of their ledger');
select lives_ok('set constraints all immediate', 'the deferred balance = ledger check passes for everything this test did');

select * from finish();
rollback;
