-- generation_jobs.error_code is the app's contract for why a job failed: one of the codes listed
-- in supabase/error-codes.md, and only on a failed job. The table itself refuses anything else,
-- whatever path writes it.
begin;
select plan(5);

select tests.create_supabase_user('ec_user');
select tests.authenticate_as('ec_user');
select (public.start_generation(prompt => 'a tin robot')).id as failed_job \gset
select public.cancel_generation(:'failed_job');
select (public.start_generation(prompt => 'a tin boat')).id as pending_job \gset
select tests.act_as_owner();

select * from tests.refused(format($$ update public.generation_jobs set error_code = 'out_of_coffee' where id = '%s' $$, :'failed_job'),
  '23514', 'a failed job with a code the registry does not list is refused');
select * from tests.refused(format($$ update public.generation_jobs set error_code = 'timed_out' where id = '%s' $$, :'pending_job'),
  '23514', 'a job that has not failed may carry no code');
select lives_ok(format($$ do $do$
  declare code text;
  begin
    foreach code in array array['cancelled', 'provider_rejected', 'provider_failed', 'provider_unavailable', 'timed_out'] loop
      update public.generation_jobs set error_code = code where id = '%s';
    end loop;
  end $do$ $$, :'failed_job'),
  'every listed code is accepted on a failed job');
select * from tests.refused(format($$ update public.generation_jobs set error_code = null where id = '%s' $$, :'failed_job'),
  '23514', 'a failed job must say why: its code cannot be cleared');
select is((select convalidated from pg_constraint where conname = 'generation_jobs_error_code_known'), true,
  'the constraint holds for every row (validated, not only for new writes)');

select * from finish();
rollback;
