-- Deleting an account (GoTrue's delete on auth.users, or a direct delete of the profile) records
-- that the user's folders in both buckets must be emptied, and the record survives the cascade
-- that removes the profile, the jobs and their own result purges.
begin;
select plan(7);
\ir storage_purge_fixture.sql

select tests.sign_up_as_auth_service('ap_gone') as gone \gset
select pg_temp.job_listing('ap_gone_jobs', 'failed', '{}') as job \gset
select tests.get_supabase_uid('ap_gone_jobs') as gone_with_job \gset
select tests.sign_up_as_auth_service('ap_stays') as stays \gset
select tests.authenticate_as('ap_gone_jobs');
select public.delete_generation(:'job');
select tests.act_as_owner();
select is((select count(*)::int from private.result_purges where job_id = :'job' and done_at is null), 1, 'the job''s result purge is pending before the account goes');

select tests.delete_as_auth_service(:'gone');
select tests.delete_as_auth_service(:'gone_with_job');
select results_eq(
  format($$ select bucket_id, path, reason, attempts, done_at is null, next_attempt_at <= now()
              from private.storage_purges where user_id = '%s' order by bucket_id $$, :'gone'),
  format($$ values ('generated-images'::text, '%1$s/'::text, 'account_deleted'::text, 0, true, true),
                   ('user-uploads', '%1$s/', 'account_deleted', 0, true, true) $$, :'gone'),
  'a deleted account leaves one purge per bucket, of its whole folder, due at once');
select is((select count(*)::int from private.result_purges where job_id = :'job'), 0, 'the job and its result purge went with the account');
select is((select count(*)::int from private.storage_purges where user_id = :'gone_with_job' and done_at is null), 2,
  'the folder purges outlive the cascade that removed the jobs');
select is((select count(*)::int from private.storage_purges where user_id = :'stays'), 0, 'nothing is recorded for a user who stays');

-- A profile deleted directly (by an operator) records the same.
select tests.sign_up_as_auth_service('ap_profile_only') as profile_only \gset
delete from public.profiles where id = :'profile_only';
select is((select array_agg(bucket_id order by bucket_id) from private.pending_storage_purges where user_id = :'profile_only'),
  array['generated-images', 'user-uploads'], 'a direct profile delete records both folders, and operators see them pending');

-- A folder purge is exactly a user's folder: never a bare prefix that would reach a neighbour's.
select throws_ok(format($$ insert into private.storage_purges (bucket_id, path, user_id, reason, requested_at, next_attempt_at)
                           values ('user-uploads', '%s', '%s', 'account_deleted', now(), now()) $$, left(:'stays', 8), :'stays'),
  '23514', null, 'an account purge of anything but <user_id>/ is refused');

select * from finish();
rollback;
