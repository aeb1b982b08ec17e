-- Changing a plan's retention moves the expiry of results still kept, and only those: a job
-- whose results were already removed (expired, or deleted by its owner) gets no expiry back, or
-- the retention tick would pick it up again on every run.
begin;
select plan(3);

select tests.create_supabase_user('rcs_user');
select tests.authenticate_as('rcs_user');
select (public.start_generation(prompt => 'a clay owl')).id as kept \gset
select public.cancel_generation(:'kept');
select (public.start_generation(prompt => 'a clay fox')).id as deleted \gset
select public.cancel_generation(:'deleted');
select (public.start_generation(prompt => 'a clay hen')).id as expired \gset
select public.cancel_generation(:'expired');
select public.delete_generation(:'deleted');
select tests.act_as_owner();
update public.generation_jobs set result_urls = '{}', results_removed_at = now() where id = :'expired';

update public.plans set result_retention_days = result_retention_days + 1 where id = 'free';

select isnt((select results_expire_at from private.job_pipeline where job_id = :'kept'), null, 'a kept result has an expiry');
select is((select results_expire_at from private.job_pipeline where job_id = :'deleted'), null,
  'a deleted job gets no expiry back');
select is((select results_expire_at from private.job_pipeline where job_id = :'expired'), null,
  'a job whose results expired gets no expiry back');

select * from finish();
rollback;
