-- Error texts are safe to print: client text an error quotes has its control characters (C0, DEL,
-- C1), bidi controls and line separators written as \uXXXX escapes, in the message, the detail
-- and the hint; printable text, any script, is quoted as it is (values in double quotes:
-- private.error_value). Through start_generation, and raise_error for the hint.
begin;
select plan(12);

\ir input_policy_fixture.sql
update private.settings set value = '["photos.example.com"]' where key = 'images.allowed_hosts';

select is(tests.refusal_text(format('select private.raise_error(%L, %L, %L, %L)', 'KL006', E'm\u001b[2J', E'd\u0007\u009b', E'h\u202e\u2066\r')),
  'KL006: m\u001b[2J | d\u0007\u009b | h\u202e\u2066\u000d', 'raise_error escapes message, detail and hint');

-- Excerpts stay bounded, and are cut between escapes, never inside one.
select is(private.excerpt(repeat(E'\u001b', 100), 60), repeat('\u001b', 9) || '…', 'an excerpt of escapes is at most max_chars, whole escapes only');
select is(private.excerpt(E'abc\u001bdef', 8), 'abc…', 'an escape that would not fit whole is left out');
select is(private.excerpt(repeat('a', 60), 60), repeat('a', 60), 'printable text at max_chars is unchanged');
select is(private.excerpt(repeat('a', 61), 60), repeat('a', 59) || '…', 'printable text over max_chars is cut with an ellipsis');

set local role authenticated;
set local request.jwt.claims = '{"sub": "5a5a0000-0000-4000-8000-00000000fa01", "role": "authenticated"}';

select is(tests.refusal_text(statement), expected, why)
  from (values
    (format('select public.start_generation(template_id => %L, inputs => %L, image_urls => array[%L])', '5a5a0000-0000-4000-8000-00000000f001',
            jsonb_build_object(E'x\u001b[31mRED\nline2', 1), 'https://photos.example.com/a.png'),
     'KL007: unknown input: "x\u001b[31mRED\u000aline2" | this template declares: subject | Send only the template''s declared fields.',
     'KL007 quotes an unknown key with ESC and a line feed escaped'),
    (format('select public.start_generation(prompt => %L, style => %L)', 'a cat', E's\u001b\u0007'),
     'KL015: unknown style | no active style "s\u001b\u0007" | Refresh the style list.',
     'KL015 quotes a style key with ESC and BEL escaped'),
    (format('select public.start_generation(prompt => %L, aspect_ratio => %L)', 'a cat', E'1:1\u202e\u200f'),
     'KL010: invalid aspect ratio | Policy T2I does not accept "1:1\u202e\u200f" | Use one of: 1:1',
     'KL010 quotes an aspect ratio with bidi controls escaped'),
    (format('select public.start_generation(prompt => %L, quality => %L)', 'a cat', E'fast\u0085\u007f\u2028'),
     'KL008: invalid quality | got "fast\u0085\u007f\u2028" | Use fast, standard or ultra.',
     'KL008 quotes a quality with NEL, DEL and a line separator escaped'),
    (format('select public.start_generation(prompt => %L, style => %L)', 'a cat', 'café ✓ 日本 שלום'),
     'KL015: unknown style | no active style "café ✓ 日本 שלום" | Refresh the style list.',
     'printable text in any script is quoted as sent')
  ) as errors(statement, expected, why);

-- An idempotency key is quoted in KL019's detail.
select lives_ok($$ select public.start_generation(prompt => 'a cat', idempotency_key => E'key\u001b]0;x\u0007') $$, 'a first start with the key');
select matches(tests.refusal_text($$ select public.start_generation(prompt => 'a dog', idempotency_key => E'key\u001b]0;x\u0007') $$),
  '^KL019: [^|]+ \| key "key\\u001b\]0;x\\u0007" belongs to job [0-9a-f-]{36} \| ', 'KL019 quotes the key with its controls escaped');

select * from finish();
rollback;
