-- Which uploads expire: last written more than uploads.retention_days (7) ago, and listed by no
-- pending or generating job. The object name is matched exactly against the job's URLs (signed,
-- public or authenticated Storage URLs, percent-encoded), never as a LIKE pattern.
begin;
select plan(3);
\ir storage_purge_fixture.sql

select tests.create_supabase_user('ur_owner') as owner \gset
create temporary table cases (name text, age interval, listed_by text, url_path text, expired boolean) on commit drop;
insert into cases values
  ('old.png',            '8 days',  null,         null,                 true),
  ('fresh.png',          '6 days',  null,         null,                 false),
  ('pending.png',        '30 days', 'pending',    'pending.png',        false),
  ('generating.png',     '30 days', 'generating', 'generating.png',     false),
  ('finished.png',       '30 days', 'failed',     'finished.png',       true),
  ('a b%c.png',          '30 days', 'pending',    'a%20b%25c.png',      false),  -- percent-encoded in the URL
  ('pat_1.png',          '30 days', 'pending',    'pat_1.png',          false),
  ('patx1.png',          '30 days', null,         null,                 true),   -- matches pat_1.png as a LIKE pattern
  ('pct%.png',           '30 days', 'pending',    'pct%.png',           false),  -- a literal %, as written
  ('lit%41.png',         '30 days', 'pending',    'lit%41.png',         false),  -- a literal %41 written unencoded
  ('pctx.png',           '30 days', null,         null,                 true),   -- matches pct%.png as a LIKE pattern
  ('photo.png.old',      '30 days', null,         null,                 true),   -- a listed name is a prefix of it
  ('photo.png',          '30 days', 'pending',    'photo.png',          false),
  ('latin1.png',         '30 days', null,         null,                 true);   -- beside a job listing %FF%C3.png (no UTF-8 once decoded)
select pg_temp.put_object('user-uploads', :'owner' || '/' || name, age) from cases;
-- Replaced (upserted) two days ago, first uploaded a month ago: counted from the last write.
insert into storage.objects (bucket_id, name, created_at, updated_at)
values ('user-uploads', :'owner' || '/replaced.png', now() - interval '30 days', now() - interval '2 days');
insert into cases values ('replaced.png', '2 days', null, null, false);
-- Jobs list the objects in every URL shape the app may pass.
select pg_temp.job_listing('ur_owner', c.listed_by, array[
         format('https://ref.supabase.co/storage/v1/object/sign/user-uploads/%s/%s?token=abc.def', :'owner', c.url_path)])
  from cases c where c.listed_by is not null and c.name not in ('photo.png');
select pg_temp.job_listing('ur_owner', 'pending', array[
  'https://ref.supabase.co/storage/v1/object/public/user-uploads/' || :'owner' || '/photo.png',
  'https://img.test/elsewhere.png']);
-- Bytes that are no UTF-8 once decoded (a Latin-1 file name, or a client's probe) must not stop
-- the walk for everyone.
select pg_temp.job_listing('ur_owner', 'pending', array[
  format('https://ref.supabase.co/storage/v1/object/sign/user-uploads/%s/%%FF%%C3.png?token=x', :'owner')]);

select is(private.expire_uploads(now()), (select count(*)::int from cases where expired), 'one purge per expired upload');
select results_eq(
  format($$ select substr(path, 38) from private.storage_purges where reason = 'upload_expired' and user_id = '%s' and done_at is null order by 1 $$, :'owner'),
  $$ select name from cases where expired order by 1 $$,
  'old, unlisted or listed only by a finished job: expired; fresh, replaced lately, or listed by an unfinished job (exact name): kept');

select is(private.expire_uploads(now()), 0, 'the next pass records nothing new for uploads already waiting for their purge');

select * from finish();
rollback;
