-- Moderation, what is blocked (KL016): with "nude" and "blood bath" on the list, the spellings
-- that got through before (invisible characters, look-alike letters, combining marks, plurals,
-- leetspeak, letters split by separators) and a few relatives; with "naked", "zombie", "gory"
-- and the Greek "γυμνό" too, Greek and Cyrillic capitals that look like Latin letters. Through
-- start_generation.
begin;
select plan(61);

\ir input_policy_fixture.sql
update private.settings set value = '["photos.example.com"]' where key = 'images.allowed_hosts';
insert into private.blocked_terms (term, reason)
values ('nude', 'test'), ('blood bath', 'test'), ('naked', 'test'), ('zombie', 'test'), ('gory', 'test'), ('γυμνό', 'test');

set local role authenticated;
set local request.jwt.claims = '{"sub": "5a5a0000-0000-4000-8000-00000000fa01", "role": "authenticated"}';

select throws_ok(format('select public.start_generation(prompt => %L)', prompt), 'KL016', null, 'blocked: ' || why)
  from (values
    (E'a nu\u034fde statue', 'combining grapheme joiner U+034F inside'),
    (E'a nu\u180ede statue', 'Mongolian vowel separator U+180E inside'),
    (E'a nu\u2062de statue', 'invisible times U+2062 inside'),
    (E'a nud\ufe0fe statue', 'variation selector U+FE0F inside'),
    (E'a nu\U000e0020de statue', 'tag space U+E0020 inside'),
    (E'a nu\u200dde statue', 'zero-width joiner inside'),
    (E'a nu\u00adde statue', 'soft hyphen inside'),
    (E'a n\u0443de statue', 'Cyrillic u'),
    (E'a nud\u0435 statue', 'Cyrillic e'),
    (E'a \u043f\u0443d\u0435 statue', 'mostly Cyrillic'),
    (E'a nud\u03b5 statue', 'Greek epsilon'),
    (E'a nu\u0308de statue', 'a combining diaeresis'),
    ('a nüde statue', 'a precomposed ü'),
    ('a ñúdè statue', 'accents on every letter'),
    (E'a nu\u0301\u0302\u0303de statue', 'stacked combining marks'),
    ('a ｎｕｄｅ statue', 'fullwidth letters'),
    ('a 𝐧𝐮𝐝𝐞 statue', 'mathematical bold letters'),
    ('a NUDE statue', 'upper case'),
    ('nudes on a beach', 'plural'),
    ('the nudez', 'slang plural'),
    ('a nud3 statue', 'leetspeak e'),
    ('blood b4th', 'leetspeak a'),
    ('bl00d bath', 'leetspeak o'),
    ('a n-u-d-e statue', 'hyphens between the letters'),
    ('a n u d e statue', 'spaces between the letters'),
    ('a n.u.d.e statue', 'dots between the letters'),
    ('a n_u_d_e statue', 'underscores between the letters'),
    ('a n*u*d*e statue', 'asterisks between the letters'),
    ('n-u-d-e-s everywhere', 'split plural'),
    ('a nude_2 statue', 'a word followed by an underscore and digit'),
    ('a blood bath', 'a phrase'),
    ('a BLOOD    BATH', 'a phrase with more spaces'),
    ('a bloodbath', 'a phrase written as one word'),
    ('a blood-bath', 'a phrase with a hyphen'),
    ('a blood_bath', 'a phrase with an underscore'),
    ('a b-l-o-o-d b-a-t-h', 'a phrase with split letters'),
    ('a blood b-a-t-h', 'a phrase with one word split'),
    ('blood baths', 'a plural phrase'),
    (E'a bl\u043e\u043ed b\u0430th', 'a phrase with Cyrillic o and a'),
    ('nude', 'the term alone'),
    ('a cat, nude.', 'a term between punctuation'),
    (E'\u039dAKED', 'Greek capital Nu U+039D for N'),
    (E'a \u039dUDE statue', 'Greek capital Nu in another term'),
    (E'a BLOOD BAT\u0397', 'Greek capital Eta U+0397 for H'),
    (E'a ZO\u039cBIE', 'Greek capital Mu U+039C for M'),
    (E'a GOR\u03a5 scene', 'Greek capital Upsilon U+03A5 for Y'),
    (E'a \u0396OMBIE', 'Greek capital Zeta U+0396 for Z'),
    (E'\u039d\u0391\u039a\u0395D', 'Greek capitals for every letter they can stand for'),
    (E'a \U0001d6b4UDE statue', 'mathematical bold capital Nu'),
    (E'\u039dak\u0395d', 'Greek capitals in lower-case text'),
    (E'a BLOOD BAT\u041d', 'Cyrillic capital En U+041D for H'),
    (E'a ZO\u041cBIE', 'Cyrillic capital Em U+041C for M'),
    (E'N\u0410\u041a\u0415D', 'Cyrillic capitals A, Ka and Ie'),
    (E'a \u050cORY scene', 'Cyrillic capital Komi Sje U+050C for G'),
    ('ένα γυμνό άγαλμα', 'a Greek term as written'),
    ('ΓΥΜΝΟ', 'a Greek term written in capitals'),
    ('ΓΥΜΝΌ', 'a Greek term in capitals with its accent')
  ) as blocked(prompt, why);

select throws_ok(
  $$ select public.start_generation(template_id => '5a5a0000-0000-4000-8000-00000000f001',
       inputs => jsonb_build_object('subject', E'a n\u0443d\u0435 model'), image_urls => array['https://photos.example.com/a.png']) $$,
  'KL016', null, 'blocked: look-alike letters in a template text input');
select throws_ok($$ select public.start_generation(prompt => 'a portrait', negative_prompt => 'n-u-d-e') $$,
  'KL016', null, 'blocked: split letters in the negative prompt');

-- The stored patterns follow the list: a term removed no longer blocks, a term added does.
reset role;
delete from private.blocked_terms where term = 'nude';
insert into private.blocked_terms (term, reason) values ('gore', 'test');
set local role authenticated;
select lives_ok($$ select public.start_generation(prompt => 'a nude statue') $$, 'a removed term no longer blocks');
select throws_ok($$ select public.start_generation(prompt => 'g0r3 everywhere') $$, 'KL016', null, 'an added term blocks at once');

select * from finish();
rollback;
