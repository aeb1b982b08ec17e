-- Slider numbers: made canonical (rounded to 6 decimal places, no trailing zeros, at most 15
-- digits before the point) before the range check and the rendering, so a number is validated
-- as it is rendered, renders short, and an error about it stays short. Through start_generation.
begin;
select plan(21);

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
insert into public.templates (id, name, category, prompt_template, input_fields, min_images, max_images)
values ('5a5a0000-0000-4000-8000-00000000f002', 'Policy Slider', 'test', 'strength {strength}',
        '[{"name": "strength", "label": "Strength", "type": "slider", "min": 0, "max": 100, "default_value": 12.50}]', 1, 1);

-- The SQLSTATE and detail a statement fails with (run as the caller).
create function pg_temp.refusal(statement text)
returns text
language plpgsql
as $$
declare
  detail text;
begin
  execute statement;
  return 'no error';
exception when others then
  get stacked diagnostics detail = pg_exception_detail;
  return sqlstate || ': ' || detail;
end
$$;
grant execute on function pg_temp.refusal(text) to authenticated;

set local role authenticated;
set local request.jwt.claims = '{"sub": "5a5a0000-0000-4000-8000-00000000fa01", "role": "authenticated"}';

-- What is rendered, and stored as the job's input.
select is((select array[j.prompt, j.inputs ->> 'strength']
             from public.start_generation(template_id => '5a5a0000-0000-4000-8000-00000000f002', inputs => sent::jsonb,
                                          image_urls => array['https://photos.example.com/a.png']) j),
          array['strength ' || canonical, canonical], format('%s renders as %s', left(sent, 40), canonical))
  from (values
    ('{"strength": 10}', '10'),
    ('{"strength": 10.0000000000000000000000001}', '10'),
    ('{"strength": 10.' || repeat('0', 16000) || '1}', '10'),
    ('{"strength": 0.30000000000000004}', '0.3'),
    ('{"strength": 5.50}', '5.5'),
    ('{"strength": 1e1}', '10'),
    ('{"strength": 2.5E+1}', '25'),
    ('{"strength": 99.9999999}', '100'),
    ('{"strength": 100.0000004}', '100'),
    ('{"strength": -0.0000001}', '0'),
    ('{"strength": 1e-16000}', '0'),
    ('{"strength": 33.3333333333}', '33.333333'),
    ('{}', '12.5')
  ) as rendered(sent, canonical);

-- What is refused, with a short detail.
select is(left(pg_temp.refusal(format('select public.start_generation(template_id => %L, inputs => %L, image_urls => array[%L])',
                                      '5a5a0000-0000-4000-8000-00000000f002', sent, 'https://photos.example.com/a.png')), 200),
          'KL006: ' || detail, format('%s is refused: %s', left(sent, 40), detail))
  from (values
    ('{"strength": 1e60000}', 'a number over 15 digits is not between 0 and 100'),
    ('{"strength": -1e60000}', 'a number over 15 digits is not between 0 and 100'),
    ('{"strength": 1e15}', 'a number over 15 digits is not between 0 and 100'),
    ('{"strength": 100.000001}', '100.000001 is not between 0 and 100'),
    ('{"strength": -0.5}', '-0.5 is not between 0 and 100'),
    ('{"strength": 1' || repeat('0', 20000) || '}', 'a number over 15 digits is not between 0 and 100')
  ) as refused(sent, detail);

select is(left(pg_temp.refusal(format('select public.start_generation(template_id => %L, inputs => %L, image_urls => array[%L])',
                                      '5a5a0000-0000-4000-8000-00000000f002', '{"strength": 100.' || repeat('0', 16000) || '1}',
                                      'https://photos.example.com/a.png')), 200),
          'no error', 'a long tail of zeros and a 1 rounds back into range');
select cmp_ok(length(pg_temp.refusal(format('select public.start_generation(template_id => %L, inputs => %L, image_urls => array[%L])',
                                            '5a5a0000-0000-4000-8000-00000000f002', '{"strength": 1e60000}', 'https://photos.example.com/a.png'))),
              '<', 100, 'the error for 1e60000 is short');

select * from finish();
rollback;
