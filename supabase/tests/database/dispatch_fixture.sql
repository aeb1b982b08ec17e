-- Fixture: KIE at https://kie.test, secrets in Vault, free budgets, no limits, no alerts, and no
-- requests or responses left by earlier runs (all undone by the test's rollback).
delete from private.alerts;
delete from private.requests;
delete from net._http_response;
delete from cron.job_run_details;
delete from vault.secrets where name in ('kie_api_key', 'functions_base_url', 'finalize_credential');
do $$
begin
  perform vault.create_secret('test-kie-key', 'kie_api_key');
  perform vault.create_secret('https://fn.test/functions/v1', 'functions_base_url');
  perform vault.create_secret('test-finalize-credential', 'finalize_credential');
end
$$;
update private.settings set value = '"https://kie.test"' where key = 'kie.base_url';
update public.plans set max_active_jobs = 1000, starts_per_minute = 1000, is_metered = true;
update private.rate_slots set available_at = '-infinity';

-- Starts a job as `who` (created on first use, with credits and the plan) the way the app does.
create function pg_temp.start_job(who text, prompt text default 'a red fox', quality text default 'fast', plan text default 'free')
returns uuid
language plpgsql
as $$
declare
  job_id uuid;
begin
  if not exists (select 1 from auth.users u where u.raw_user_meta_data ->> 'test_identifier' = who) then
    perform tests.create_supabase_user(who);
    perform public.grant_credits(tests.get_supabase_uid(who), 100, 'test credits');
    if plan <> 'free' then
      perform public.set_plan(tests.get_supabase_uid(who), plan);
    end if;
  end if;
  perform tests.authenticate_as(who);
  select (public.start_generation(prompt => prompt, quality => quality)).id into job_id;
  perform tests.act_as_owner();
  return job_id;
end
$$;

-- Stores a pg_net response for the job's latest unresolved request of that kind.
create function pg_temp.respond(job uuid, request_kind text, status integer, content text,
                                timed_out boolean default false, error_msg text default null)
returns bigint
language sql
as $$
  insert into net._http_response (id, status_code, content_type, headers, content, timed_out, error_msg)
  select r.net_request_id, status, 'application/json', '{"Content-Type": "application/json"}', content, timed_out, error_msg
    from private.requests r
   where r.job_id = job and r.kind = request_kind and r.resolved_at is null
   order by r.id desc limit 1
  returning id
$$;
