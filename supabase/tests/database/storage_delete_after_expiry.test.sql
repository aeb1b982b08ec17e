-- Deleting a job whose results already expired: the purge, even a finished one, is opened again
-- as the owner's deletion (a late object under the folder is removed then), and the results keep
-- the time they were removed.
begin;
select plan(3);

update private.result_purges set done_at = now() where done_at is null;
select tests.create_supabase_user('dae_user');
select tests.authenticate_as('dae_user');
select (public.start_generation(prompt => 'a stoneware jug')).id as job \gset
select public.cancel_generation(:'job');
select tests.act_as_owner();
select completed_at + interval '400 days' as expiry_run from public.generation_jobs where id = :'job' \gset
select private.expire_results(:'expiry_run');
select private.purge_results(:'expiry_run');
select results_removed_at as removed_at from public.generation_jobs where id = :'job' \gset

select tests.authenticate_as('dae_user');
select public.delete_generation(:'job');
select tests.act_as_owner();

select results_eq(
  format($$ select reason, done_at from private.result_purges where job_id = '%s' $$, :'job'),
  $$ values ('deleted'::text, null::timestamptz) $$,
  'the finished expiry purge is open again, as a deletion');
select cmp_ok((select next_attempt_at from private.result_purges where job_id = :'job'), '<=', now(),
  'and due at once');
select is((select results_removed_at from public.generation_jobs where id = :'job'), :'removed_at'::timestamptz,
  'the results keep the time they were removed');

select * from finish();
rollback;
