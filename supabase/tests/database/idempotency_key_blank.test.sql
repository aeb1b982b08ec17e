-- An idempotency key with nothing visible in it (only white space or invisible characters, the
-- same rule as a blank prompt: private.is_blank) is no key: start_generation refuses it with
-- KL027 and writes nothing, whichever blank characters it is made of. A key of tabs, line feeds
-- or a zero-width space used to be accepted, so an app that sent such a key on every start had
-- every later start with the same parameters answered with its first job (no new generation) and
-- every other start refused as an idempotency conflict (KL019). Keys with something visible are
-- kept as sent, invisible characters included.
begin;
select plan(13);

\ir input_policy_fixture.sql

create temp table blank_keys (key text, why text);
insert into blank_keys values
  (' ', 'a space'),
  (E'\t', 'a tab'),
  (E'\n', 'a line feed'),
  (E'\r\n', 'CR LF'),
  (E'\u00a0', 'a no-break space U+00A0'),
  (E'\u3000', 'an ideographic space U+3000'),
  (E'\u200b', 'a zero-width space U+200B'),
  (E'\u2060\ufeff', 'a word joiner and a byte order mark'),
  (E'\u3164', 'a Hangul filler U+3164');
grant select on blank_keys to authenticated;

set local role authenticated;
set local request.jwt.claims = '{"sub": "5a5a0000-0000-4000-8000-00000000fa01", "role": "authenticated"}';

select tests.footprint('5a5a0000-0000-4000-8000-00000000fa01'::uuid) as footprint_before \gset

select tests.refused(format('select public.start_generation(prompt => %L, idempotency_key => %L)', 'a lighthouse', key),
                     'KL027', 'a key of ' || why || ': KL027')
  from blank_keys;
select is(tests.footprint('5a5a0000-0000-4000-8000-00000000fa01'::uuid), :'footprint_before',
  'refused keys start nothing and debit nothing');

-- Twice the same blank key: still refused, never a replay of a first job.
select is(tests.refusal($$ select public.start_generation(prompt => 'a lighthouse', idempotency_key => E'\t') $$),
  'KL027: use 1 to 200 characters, with something visible',
  'the detail says what a key needs');

-- Keys with something visible are kept as sent.
select is((select idempotency_key from public.start_generation(prompt => 'a lighthouse', idempotency_key => E'\tk\u200b')),
  E'\tk\u200b', 'a key with a visible character is kept as sent');
select is((select idempotency_key from public.start_generation(prompt => 'a lighthouse', idempotency_key => E'\u2764')),
  E'\u2764', 'a key of one symbol is a key');

select * from finish();
rollback;
