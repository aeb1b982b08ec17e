-- The dispatch tick sends waiting jobs higher plans first, then oldest first; without the Vault
-- secrets it sends nothing and raises an alert instead of failing.
begin;
select plan(4);
\ir dispatch_fixture.sql

update private.rate_slots set available_at = '3000-01-01' where bucket = 'create';
create temp table jobs (label text, job_id uuid);
insert into jobs values ('free-old', pg_temp.start_job('or_free'));
insert into jobs values ('pro-new', pg_temp.start_job('or_pro', 'a red fox', 'fast', 'pro'));
insert into jobs values ('paid-mid', pg_temp.start_job('or_paid', 'a red fox', 'fast', 'paid'));
insert into jobs values ('free-new', pg_temp.start_job('or_free'));
-- Same transaction, same now(): spread the start times so "oldest" means something.
update private.job_pipeline p set created_at = now() - interval '1 minute' where p.job_id = (select job_id from jobs where label = 'free-old');
update private.job_pipeline p set created_at = now() + interval '1 second' where p.job_id = (select job_id from jobs where label = 'free-new');

delete from vault.secrets where name = 'kie_api_key';
update private.rate_slots set available_at = '-infinity' where bucket = 'create';
select is(private.dispatch_tick(now() + interval '2 seconds'), 0, 'without the KIE key nothing is sent');
select results_eq(
  $$ select key, pauses_dispatch, (details ->> 'waiting_jobs')::int from private.active_alerts $$,
  $$ values ('missing_secret'::text, false, 4) $$,
  'a missing secret is an alert, and the jobs wait');

do $$ begin perform vault.create_secret('test-kie-key', 'kie_api_key'); end $$;
update private.rate_slots set available_at = '3000-01-01' where bucket = 'create' and slot > 3;
select is(private.dispatch_tick(now() + interval '2 seconds'), 3, 'three tokens, three jobs sent');
select results_eq(
  $$ select j.label from jobs j join private.job_pipeline p using (job_id) where p.stage = 'creating' order by j.label $$,
  $$ values ('free-old'), ('paid-mid'), ('pro-new') $$,
  'higher plans first, then the oldest: the newest free job waits');

select * from finish();
rollback;
