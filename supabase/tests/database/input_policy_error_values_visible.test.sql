-- A refusal that quotes a value the caller sent shows it, even when it is empty or blank: the
-- value is written in double quotes, escaped as every error text is (private.excerpt), and a value
-- with nothing visible has each character written as an escape. An empty input key used to print
-- as "unknown input: " and an empty quality, aspect ratio or style as "got " or "does not accept ".
-- A template that declares no inputs says so instead of "this template declares: ". Message,
-- detail and hint, through start_generation.
begin;
select plan(12);

\ir input_policy_fixture.sql
update private.settings set value = '["photos.example.com"]' where key = 'images.allowed_hosts';
insert into public.templates (id, name, category, prompt_template, input_fields, min_images, max_images)
values ('5a5a0000-0000-4000-8000-00000000f002', 'Policy Plain', 'test', 'A plain photo', '[]', 1, 4);

set local role authenticated;
set local request.jwt.claims = '{"sub": "5a5a0000-0000-4000-8000-00000000fa01", "role": "authenticated"}';

select is(tests.refusal_text(statement), expected, why)
  from (values
    (format('select public.start_generation(template_id => %L, inputs => %L, image_urls => array[%L])',
            '5a5a0000-0000-4000-8000-00000000f001', '{"": 1}', 'https://photos.example.com/a.png'),
     'KL007: unknown input: "" | this template declares: subject | Send only the template''s declared fields.',
     'an empty input key is shown as ""'),
    (format('select public.start_generation(template_id => %L, inputs => %L, image_urls => array[%L])',
            '5a5a0000-0000-4000-8000-00000000f001', jsonb_build_object('a', 1, '', 2, E' \u200b', 3), 'https://photos.example.com/a.png'),
     'KL007: unknown input: "", "\u0020\u200b", "a" | this template declares: subject | Send only the template''s declared fields.',
     'empty, blank and plain keys are each quoted, the blank one escaped'),
    (format('select public.start_generation(template_id => %L, inputs => %L, image_urls => array[%L])',
            '5a5a0000-0000-4000-8000-00000000f002', '{"subject": "a cat"}', 'https://photos.example.com/a.png'),
     'KL007: unknown input: "subject" | this template declares no inputs | Leave inputs out for this template.',
     'a template without inputs says it declares none'),
    (format('select public.start_generation(prompt => %L, quality => %L)', 'a cat', ''),
     'KL008: invalid quality | got "" | Use fast, standard or ultra.',
     'an empty quality'),
    (format('select public.start_generation(prompt => %L, quality => %L)', 'a cat', '  '),
     'KL008: invalid quality | got "\u0020\u0020" | Use fast, standard or ultra.',
     'a quality of two spaces'),
    (format('select public.start_generation(prompt => %L, quality => %L)', 'a cat', 'fast '),
     'KL008: invalid quality | got "fast " | Use fast, standard or ultra.',
     'a quality with a trailing space shows the space'),
    (format('select public.start_generation(prompt => %L, aspect_ratio => %L)', 'a cat', ''),
     'KL010: invalid aspect ratio | Policy T2I does not accept "" | Use one of: 1:1',
     'an empty aspect ratio'),
    (format('select public.start_generation(prompt => %L, style => %L)', 'a cat', ''),
     'KL015: unknown style | no active style "" | Refresh the style list.',
     'an empty style'),
    (format('select public.start_generation(prompt => %L, style => %L)', 'a cat', E'\u200b'),
     'KL015: unknown style | no active style "\u200b" | Refresh the style list.',
     'a style of a zero-width space'),
    (format('select public.start_generation(prompt => %L, style => %L)', 'a cat', E'\U000e0020'),
     'KL015: unknown style | no active style "\U000e0020" | Refresh the style list.',
     'a style of a tag character beyond the Basic Multilingual Plane'),
    (format('select public.start_generation(prompt => %L, style => %L)', 'a cat', repeat(E'\u3000', 100)),
     'KL015: unknown style | no active style "' || repeat('\u3000', 9) || '…" | Refresh the style list.',
     'a long blank value is cut between escapes, with an ellipsis')
  ) as refusals(statement, expected, why);

select is(tests.footprint('5a5a0000-0000-4000-8000-00000000fa01'::uuid), 'jobs=0 credits=10 ledger=1', 'nothing was started');

select * from finish();
rollback;
