-- Fixture of the input_policy_* files (as the owner): one user on an unmetered plan with room for
-- every start, one model per mode, one template that takes one to four photos and has a text
-- field. The settings, blocked terms and functions a file needs stay in that file.
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
