-- Image URL policy, signed Storage URLs: the provider downloads the photo when it runs the task,
-- so a signed URL (`/storage/v1/object/sign/...?token=<JWT>`) whose token has already expired can
-- only fail there, after the credits were taken. start_generation refuses it (KL013, the detail
-- says it expired), and so does retry_generation, which replays the URL the failed job stored:
-- the app signs the upload again and starts a new job. A URL still valid, a token that has no
-- numeric exp, and a URL that is not a signed Storage URL are not this rule's business (a token
-- that is no JWT at all is refused by its own rule: input_policy_image_url_token_form).
begin;
select plan(11);

\ir input_policy_fixture.sql
update private.settings set value = '["img.test"]' where key = 'images.allowed_hosts';

-- A signed URL as Storage makes it: a JWT whose payload holds the object and iat/exp (seconds).
create function pg_temp.signed(name text, exp text) returns text language sql as $$
  select 'https://img.test/storage/v1/object/sign/user-uploads/5a5a0000-0000-4000-8000-00000000fa01/' || name
         || '?token=eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.'
         || rtrim(translate(encode(convert_to(
              format('{"url":"user-uploads/5a5a0000-0000-4000-8000-00000000fa01/%s","iat":1796300000,"exp":%s}', name, exp),
              'UTF8'), 'base64'), E'+/\n', '-_'), '=')
         || '.c2lnbmF0dXJl'
$$;
create function pg_temp.start_with(url text) returns text language sql as $$
  select format('select public.start_generation(template_id => %L, image_urls => array[%L])',
                '5a5a0000-0000-4000-8000-00000000f001', url)
$$;
grant execute on function pg_temp.signed(text, text), pg_temp.start_with(text) to authenticated;

set local role authenticated;
set local request.jwt.claims = '{"sub": "5a5a0000-0000-4000-8000-00000000fa01", "role": "authenticated"}';

select throws_ok(pg_temp.start_with(pg_temp.signed('a.png', floor(extract(epoch from now()) - 60)::text)),
  'KL013', null, 'a signed URL that expired a minute ago is refused');
select throws_like(pg_temp.start_with(pg_temp.signed('a.png', '1700000000')),
  '%image URL not accepted%', 'with the usual message');
select throws_ok(pg_temp.start_with(pg_temp.signed('a.png', floor(extract(epoch from now()))::text)),
  'KL013', null, 'a token expiring at this very second is expired');

select throws_ok(pg_temp.start_with(replace(pg_temp.signed('a.png', '1700000000'), '/object/sign/', '/render/image/sign/') || '&width=512'),
  'KL013', null, 'so is an expired signed URL of a transformed image (render/image/sign)');
select lives_ok(pg_temp.start_with(pg_temp.signed('b.png', floor(extract(epoch from now()) + 3600)::text)),
  'a signed URL valid for another hour is accepted');
select lives_ok(pg_temp.start_with(pg_temp.signed('c.png', '"soon"')),
  'a token without a numeric exp is not judged');
select lives_ok(pg_temp.start_with('https://img.test/storage/v1/object/sign/user-uploads/5a5a0000-0000-4000-8000-00000000fa01/h.png?token='
                                   || 'eyJhbGciOiJIUzI1NiJ9.' || rtrim(encode(convert_to('{"url":"user-uploads"}', 'UTF8'), 'base64'), '=') || '.sig'),
  'a token without exp is not judged');
select lives_ok(pg_temp.start_with('https://img.test/photos/f.png?token=' || split_part(pg_temp.signed('f.png', '1700000000'), 'token=', 2)),
  'an expired JWT on a URL that is not a signed Storage URL is not judged');

-- A retry replays the stored URL: once it has expired, the retry is refused and starts nothing.
select (public.start_generation(template_id => '5a5a0000-0000-4000-8000-00000000f001',
          image_urls => array[pg_temp.signed('g.png', floor(extract(epoch from now()) + 3600)::text)])).id as job \gset
select public.cancel_generation(:'job');
reset role;
-- The hour has passed: the URL the job stored now carries an expired token.
update public.generation_jobs
   set request = jsonb_set(request, '{image_urls}', jsonb_build_array(pg_temp.signed('g.png', '1700000000')))
 where id = :'job';
set local role authenticated;
select throws_ok(format('select public.retry_generation(%L)', :'job'), 'KL013', null,
  'retrying a job whose signed URL has expired is refused');
reset role;
select is((select count(*)::int from public.generation_jobs where retry_of = :'job'), 0, 'and starts nothing');
select is(private.image_url_problem(pg_temp.signed('a.png', '1700000000')),
  'the signed URL expired at 2023-11-14T22:13:20Z: sign the upload again',
  'the detail says when it expired and what to do');

select * from finish();
rollback;
