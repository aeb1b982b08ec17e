-- Why: 20261203080000 added generation_jobs_error_code_known NOT VALID, so new writes are checked.
-- This checks the rows written before it, in a transaction of its own: VALIDATE CONSTRAINT takes a
-- SHARE UPDATE EXCLUSIVE lock, so starts, ticks and the app's reads go on during the scan.
alter table public.generation_jobs validate constraint generation_jobs_error_code_known;
