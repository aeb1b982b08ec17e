-- Error texts stay short: values a client sent are cut in what an error echoes back, and every
-- KLxxx error's message, detail and hint have a ceiling. Through start_generation.
begin;
select plan(5);

-- Fixtures (as the owner): one user on an unmetered plan with room for every start, one model per
-- mode, one template that takes one to four photos and has a text field.
update public.plans set is_metered = false, max_active_jobs = 1000, starts_per_minute = 1000;
update public.models set is_active = false;
insert into public.models
  (key, display_name, kie_model, mode, quality, credit_cost, min_plan, image_input_field, min_input_images, max_input_images, max_prompt_length, aspect_ratios)
values
  ('policy-t2i', 'Policy T2I', 'test/t2i', 'text-to-image', 'fast', 1, 'free', null, 0, 0, 1000, '{1:1}'),
  ('policy-i2i', 'Policy I2I', 'test/i2i', 'image-to-image', 'fast', 1, 'free', 'image_urls', 1, 4, 1000, '{1:1}');
insert into public.templates (id, name, category, prompt_template, input_fields, min_images, max_images)
values ('5a5a0000-0000-4000-8000-00000000f001', 'Policy Photo', 'test', 'A photo of {subject}',
        '[{"name": "subject", "label": "Subject", "type": "text", "max_length": 500, "default_value": "a cat"}]', 1, 4);
insert into auth.users (id, aud, role, email, raw_app_meta_data)
values ('5a5a0000-0000-4000-8000-00000000fa01', 'authenticated', 'authenticated', 'input-policy@test.kiln.local', '{"provider": "email"}');
update private.settings set value = '["photos.example.com"]' where key = 'images.allowed_hosts';

-- The SQLSTATE and the lengths of message and detail a statement fails with (run as the caller).
create function pg_temp.refusal_lengths(statement text)
returns text
language plpgsql
as $$
declare
  message text;
  detail text;
begin
  execute statement;
  return 'no error';
exception when others then
  get stacked diagnostics message = message_text, detail = pg_exception_detail;
  return format('%s message<=200:%s detail<=300:%s', sqlstate, length(message) <= 200, length(detail) <= 300);
end
$$;
grant execute on function pg_temp.refusal_lengths(text) to authenticated;

select is(pg_temp.refusal_lengths(format('select private.raise_error(%L, %L, %L, %L)', 'KL006', repeat('m', 5000), repeat('d', 5000), repeat('h', 5000))),
  'KL006 message<=200:t detail<=300:t', 'raise_error cuts message, detail and hint');

set local role authenticated;
set local request.jwt.claims = '{"sub": "5a5a0000-0000-4000-8000-00000000fa01", "role": "authenticated"}';

select is(pg_temp.refusal_lengths(statement), code || ' message<=200:t detail<=300:t', why)
  from (values
    ($$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-00000000f001',
         inputs => jsonb_build_object(repeat('k', 30000), 1, repeat('j', 30000), 2), image_urls => array['https://photos.example.com/a.png']) $$,
     'KL007', 'unknown input keys of 30,000 characters'),
    ($$ select public.start_generation(prompt => 'a cat', style => repeat('s', 60000)) $$, 'KL015', 'a style key of 60,000 characters'),
    ($$ select public.start_generation(prompt => 'a cat', aspect_ratio => repeat('9', 60000)) $$, 'KL010', 'an aspect ratio of 60,000 characters'),
    ($$ select public.start_generation(prompt => 'a cat', quality => repeat('q', 60000)) $$, 'KL008', 'a quality of 60,000 characters')
  ) as echoes(statement, code, why);

select * from finish();
rollback;
