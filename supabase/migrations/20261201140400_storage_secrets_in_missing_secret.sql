-- Why: the kiln-account tick's missing_secret alert checked only the dispatch secrets. A deploy
-- that forgot project_url or service_role_key (the Storage API's base URL and key, which every
-- Storage purge needs) raised nothing until a purge had failed for 15 minutes, and nothing at all
-- while no purge was due. The alert now names those two as well, and says what waits.
-- KIE's webhook HMAC key was listed as a Vault secret; the callback function reads it from its
-- own environment, and the database never does.

create or replace function private.account_tick(at timestamptz default now())
returns boolean
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  missing text[] := array(select n from unnest(array['kie_api_key', 'functions_base_url', 'finalize_credential',
                                                     'project_url', 'service_role_key']) as n
                           where private.secret(n) is null);
begin
  if cardinality(missing) > 0 then
    perform private.raise_alert('missing_secret',
      format('Vault secrets missing: %s. %s See README "Secrets".', array_to_string(missing, ', '),
        case when missing && array['kie_api_key', 'functions_base_url', 'finalize_credential']
             then 'Jobs wait (and time out) until they are set.'
             else 'Storage deletes (expired results and uploads, deleted accounts) wait until they are set.' end),
      false, jsonb_build_object('secrets', missing), at);
  else
    update private.alerts a set cleared_at = account_tick.at where a.key = 'missing_secret' and a.cleared_at is null;
  end if;
  return private.send_credit_check(at);
end
$$;
comment on function private.account_tick(timestamptz) is
  'API: Private. Tick: alerts on missing Vault secrets (the dispatch ones, and the Storage API''s project_url and service_role_key) and sends the KIE credit check (low-balance alert, and the probe that lifts a pause raised only by 402).';

comment on function private.secret(text) is
  'API: Private. The decrypted Vault secret of that name, or null. Names: kie_api_key, functions_base_url, finalize_credential, project_url, service_role_key.';

select private.pin_search_paths();
