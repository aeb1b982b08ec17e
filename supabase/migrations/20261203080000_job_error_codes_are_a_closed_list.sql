-- Why: the app maps a failed job's error_code (what to tell the user, whether retrying can help),
-- so the values are a contract like the KL codes: listed in supabase/error-codes.md and now held
-- to that list by the table itself. A new failure path that invents a code fails its own tests
-- here instead of reaching an app that has no mapping for it. The reverse holds too: only a
-- failed job carries a code (the app reads "error_code is set" as "failed").
--
-- Added NOT VALID here, which holds the ACCESS EXCLUSIVE lock only for the catalog change (and
-- gives up after 5 s behind a long transaction instead of queueing every start behind it: run the
-- migration again). New writes are checked from this commit on. The existing rows are checked by
-- the next migration, in its own transaction, under a SHARE UPDATE EXCLUSIVE lock that lets starts
-- and ticks go on: in this file the validation would hold the exclusive lock for the whole scan.
-- error-codes.test.ts compares this list with the registry and with the codes the SQL writes.

set lock_timeout = '5s';
alter table public.generation_jobs
  add constraint generation_jobs_error_code_known check (
    (error_code is null) = (status <> 'failed')
    and (error_code is null
         or error_code in ('cancelled', 'provider_rejected', 'provider_failed', 'provider_unavailable', 'timed_out'))
  ) not valid;
reset lock_timeout;

comment on column public.generation_jobs.error_code is
  'Why a failed job failed, for the app to map: cancelled, provider_rejected, provider_failed, provider_unavailable or timed_out (supabase/error-codes.md). Null unless status is failed.';
