-- The createTask request a new job queues in pg_net: URL, headers (key from Vault, JSON,
-- User-Agent), timeout and the body built from the models row, for a text and an image model.
begin;
select plan(9);
\ir dispatch_fixture.sql

-- Text-to-image with a negative prompt (imagen-4 takes one).
update private.settings set value = '"TestAgent/1.0"' where key = 'kie.user_agent';
create temp table started as
  select pg_temp.start_job('dr_pro', 'a lighthouse at dusk', 'standard', 'paid') as job_id;

select results_eq(
  $$ select q.method::text, q.url, q.headers, q.timeout_milliseconds
       from net.http_request_queue q join private.requests r on r.net_request_id = q.id
      where r.job_id = (select job_id from started) $$,
  $$ values ('POST', 'https://kie.test/api/v1/jobs/createTask',
             '{"Authorization": "Bearer test-kie-key", "Content-Type": "application/json", "User-Agent": "TestAgent/1.0"}'::jsonb, 8000) $$,
  'createTask goes to the configured base URL with the key from Vault, JSON and our User-Agent, and the create timeout');

select is(
  (select convert_from(q.body, 'UTF8')::jsonb - 'callBackUrl'
     from net.http_request_queue q join private.requests r on r.net_request_id = q.id
    where r.job_id = (select job_id from started)),
  '{"model": "google/imagen4", "input": {"prompt": "a lighthouse at dusk", "aspect_ratio": "1:1"}}'::jsonb,
  'the body names the KIE model and sends prompt and aspect ratio explicitly');

select matches(
  (select convert_from(q.body, 'UTF8')::jsonb ->> 'callBackUrl'
     from net.http_request_queue q join private.requests r on r.net_request_id = q.id
    where r.job_id = (select job_id from started)),
  '^https://fn\.test/functions/v1/kie-callback\?job=' || (select job_id from started) || '&attempt=1&token=[0-9a-f]{64}$',
  'the callback URL comes from Vault and names the job, the attempt and a 256-bit token');

select ok(
  (select r.callback_token_hash = sha256(convert_to(substring(convert_from(q.body, 'UTF8')::jsonb ->> 'callBackUrl' from 'token=([0-9a-f]+)$'), 'UTF8'))
     from net.http_request_queue q join private.requests r on r.net_request_id = q.id
    where r.job_id = (select job_id from started)),
  'the stored hash is the sha-256 of the token in the URL');
select is(
  (select count(*)::int
     from net.http_request_queue q join private.requests r on r.net_request_id = q.id,
          lateral substring(convert_from(q.body, 'UTF8')::jsonb ->> 'callBackUrl' from 'token=([0-9a-f]+)$') as token
    where r.job_id = (select job_id from started)
      and (exists (select 1 from private.requests x where x::text like '%' || token || '%')
           or exists (select 1 from private.job_pipeline x where x::text like '%' || token || '%'))),
  0, 'only the token''s hash is stored, never the token itself');
select ok((select r.callback_token_hash <> sha256(convert_to(repeat('0', 64), 'UTF8')) from private.requests r
            where r.job_id = (select job_id from started) and r.kind = 'create'), 'another token has another hash');

-- Negative prompt and image-to-image: the model's image field and fixed extras.
insert into private.model_requests (model_key, output_format, sends_negative_prompt, extra_input)
values ('imagen-fast', 'jpeg', true, '{"seed": 7}')
on conflict (model_key) do update set output_format = excluded.output_format, sends_negative_prompt = true, extra_input = excluded.extra_input;
select tests.authenticate_as('dr_pro');
-- The API roles have no TEMP: keep the job id in a psql variable.
select (public.start_generation(prompt => 'a cat', negative_prompt => 'dogs', aspect_ratio => '16:9')).id as neg_job \gset
select tests.act_as_owner();
select is(
  (select convert_from(q.body, 'UTF8')::jsonb -> 'input'
     from net.http_request_queue q join private.requests r on r.net_request_id = q.id where r.job_id = :'neg_job'),
  '{"prompt": "a cat", "negative_prompt": "dogs", "aspect_ratio": "16:9", "output_format": "jpeg", "seed": 7}'::jsonb,
  'negative prompt, output format and per-model extras are sent when the model takes them');

update public.models set is_active = false where mode = 'image-to-image' and quality = 'fast';
insert into public.models (key, display_name, kie_model, mode, quality, credit_cost, min_plan, image_input_field, min_input_images,
                           max_input_images, max_prompt_length, aspect_ratios)
values ('t-edit', 'Test Edit', 'google/nano-banana-edit', 'image-to-image', 'fast', 1, 'free', 'image_urls', 1, 4, 500, '{1:1,3:4}');
insert into private.model_requests (model_key, output_format) values ('t-edit', 'png');
insert into public.templates (id, name, category, prompt_template, input_fields, default_aspect_ratio, is_premium, is_active, min_images, max_images)
values ('7d7d0000-0000-4000-8000-000000000001', 'Test Edit', 'test', 'Make it {mood}',
        '[{"name": "mood", "label": "Mood", "type": "text", "required": true}]', '3:4', false, true, 1, 2);
select tests.authenticate_as('dr_pro');
select (public.start_generation(template_id => '7d7d0000-0000-4000-8000-000000000001', inputs => '{"mood": "sunny"}',
                                image_urls => array['https://img.test/a.jpg', 'https://img.test/b.jpg'])).id as edit_job \gset
select tests.act_as_owner();
select is(
  (select convert_from(q.body, 'UTF8')::jsonb - 'callBackUrl'
     from net.http_request_queue q join private.requests r on r.net_request_id = q.id where r.job_id = :'edit_job'),
  '{"model": "google/nano-banana-edit", "input": {"prompt": "Make it sunny", "aspect_ratio": "3:4", "output_format": "png",
    "image_urls": ["https://img.test/a.jpg", "https://img.test/b.jpg"]}}'::jsonb,
  'image-to-image sends the photos in the model''s image field');

select results_eq(
  format($$ select p.stage, p.attempt, r.kind, r.attempt from private.job_pipeline p join private.requests r on r.job_id = p.job_id
      where p.job_id = %L $$, :'edit_job'),
  $$ values ('creating'::text, 1, 'create'::text, 1) $$,
  'the job is handed to pg_net (stage creating, attempt 1) and the request is logged');

select * from finish();
rollback;
