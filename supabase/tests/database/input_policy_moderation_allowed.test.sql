-- Moderation, what is not blocked: words that merely contain a term or look like one, so the
-- folding of look-alikes, plurals, leetspeak and split letters does not turn into false alarms.
-- "nude", "blood bath" and "sos" are on the list; every prompt below must start a job.
begin;
select plan(30);

\ir input_policy_fixture.sql
update private.settings set value = '["photos.example.com"]' where key = 'images.allowed_hosts';
insert into private.blocked_terms (term, reason) values ('nude', 'test'), ('blood bath', 'test'), ('sos', 'test');

set local role authenticated;
set local request.jwt.claims = '{"sub": "5a5a0000-0000-4000-8000-00000000fa01", "role": "authenticated"}';

select lives_ok(format('select public.start_generation(prompt => %L)', prompt), 'allowed: ' || why)
  from (values
    ('a denuded hillside', 'a term inside a longer word'),
    ('a bowl of Nudelsuppe', 'a German word that starts with the term'),
    ('nudel soup with herbs', 'the term followed by a letter'),
    ('a nudge and a nuance', 'words sharing letters'),
    ('a prelude in the dunes', 'words ending like the term'),
    ('nudest hour of the dawn', 'a longer word that starts with the term plus s'),
    ('a nudist beach sign', 'another longer word'),
    ('the blood bank on main street', 'the first word of a phrase alone'),
    ('a bird bath in the garden', 'the second word of a phrase alone'),
    ('a bloodhound in a bathrobe', 'both words inside longer words'),
    ('bloodbathroom tiles', 'the phrase inside a longer word'),
    ('menu de jour', 'letters of the term across two words'),
    ('a nu de style poster', 'the term split unevenly'),
    ('a b c, then a nu de style', 'the term split unevenly next to spaced letters'),
    ('the storms denude the hills', 'a word ending in the term'),
    ('room 505 at the hotel', 'digits that spell a term in leetspeak'),
    ('sosa street, a sosia', 'words that start with a short term'),
    ('a naked-eye view of Uranus', 'no term at all'),
    ('Москва ночью', 'Cyrillic text'),
    ('Ελληνικό τοπίο', 'Greek text'),
    ('ΕΛΛΗΝΙΚΟ ΤΟΠΙΟ ΜΕ ΖΩΑ', 'Greek text in capitals'),
    (E'a \u03bdude statue', 'a small Greek nu, which looks like v, not n'),
    ('日本の風景', 'Japanese text'),
    ('a café in Zürich', 'accented text'),
    ('n u t s and bolts', 'spaced letters of another word'),
    ('a b c d e f g poster', 'a spaced alphabet'),
    ('5 0 5', 'spaced digits'),
    ('the word "nudity" in a dictionary', 'a longer word with the term as prefix'),
    ('an unuded rock', 'the term inside a word'),
    ('Newton''s cradle', 'an apostrophe')
  ) as allowed(prompt, why);

select * from finish();
rollback;
