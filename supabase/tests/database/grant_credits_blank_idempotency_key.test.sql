-- grant_credits (service role) refuses an idempotency key with nothing visible in it (only white
-- space or invisible characters: private.is_blank, the rule start_generation follows) with KL027,
-- whichever blank characters it is made of, and a reason with nothing visible with KL025 ("reason
-- is required"): users read the reason in their history. Keys and reasons of spaces were refused
-- already; tabs, line feeds, no-break, zero-width and filler characters were taken. Nothing is
-- written. Keys and reasons with something visible are kept as sent.
begin;
select plan(21);

\ir input_policy_fixture.sql

create temp table blank_texts (content text, why text);
insert into blank_texts values
  (' ', 'a space'),
  (E'\t', 'a tab'),
  (E'\n', 'a line feed'),
  (E'\r\n', 'CR LF'),
  (E'\u00a0', 'a no-break space U+00A0'),
  (E'\u3000', 'an ideographic space U+3000'),
  (E'\u200b', 'a zero-width space U+200B'),
  (E'\u2060\ufeff', 'a word joiner and a byte order mark'),
  (E'\u3164', 'a Hangul filler U+3164');
grant select on blank_texts to service_role;

select tests.authenticate_as_service_role();
select tests.footprint('5a5a0000-0000-4000-8000-00000000fa01'::uuid) as footprint_before \gset

select tests.refused(format('select public.grant_credits(%L, 5, %L, %L)', '5a5a0000-0000-4000-8000-00000000fa01', 'Support', content),
                     'KL027', 'a key of ' || why || ': KL027')
  from blank_texts;
select tests.refused(format('select public.grant_credits(%L, 5, %L)', '5a5a0000-0000-4000-8000-00000000fa01', content),
                     'KL025', 'a reason of ' || why || ': KL025')
  from blank_texts;
select is(tests.footprint('5a5a0000-0000-4000-8000-00000000fa01'::uuid), :'footprint_before',
  'refused grants write nothing');

-- Keys and reasons with something visible are kept as sent.
select is((select l.idempotency_key || '|' || l.reason
             from public.grant_credits('5a5a0000-0000-4000-8000-00000000fa01', 5, E'\tSupport\u200b', E'\tk\u200b') l),
  E'\tk\u200b|\tSupport\u200b', 'a key and a reason with a visible character are kept as sent');
select isnt(tests.footprint('5a5a0000-0000-4000-8000-00000000fa01'::uuid), :'footprint_before', 'that grant is written');

select * from finish();
rollback;
