-- Why: since 20261203190200 one Storage delete carries the folders of up to a few hundred result
-- purges, and a run records up to 1000 of them. Recording a request read pg_net's answer to each
-- purge's previous request once per purge: the purges one request carried read the same answer
-- hundreds of times. private.storage_delete_problem walks pg_net's answers from the time the
-- request was sent until it finds one with its id, so a request with no answer (lost by the
-- worker, or still queued) costs a walk over every answer since it was sent, each time. Measured
-- on the 2-core machine: 1000 due purges whose shared request of 50 minutes ago got no answer,
-- beside 200,000 answers from the last hour, took 13.8 s a run (each run then read it for 1000
-- purges, where it read it for at most 50 before). The upload purge reads once per request since
-- 20261201130000; the result purge now does the same.

create or replace function private.send_result_purge(job_ids uuid[], names text[], at timestamptz)
returns integer
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  request bigint := private.send_storage_delete('generated-images', names);
  problems jsonb;
begin
  if request is null then
    update private.result_purges r
       set last_error = 'the Vault secrets project_url and service_role_key are needed to call the Storage API',
           next_attempt_at = at + interval '1 minute'
     where r.job_id = any (job_ids);
    return 0;
  end if;
  -- How each previous request failed, if it did, read once per request (many purges share one).
  select coalesce(pg_catalog.jsonb_object_agg(p.last_request_id::text, private.storage_delete_problem(p.last_request_id, p.last_request_at)), '{}')
    into problems
    from (select distinct on (x.last_request_id) x.last_request_id, x.last_request_at
            from private.result_purges x
           where x.job_id = any (job_ids) and x.last_request_id is not null
           order by x.last_request_id, x.last_request_at desc
          offset 0) p;
  -- private.storage_purge_backoff: at most 50 minutes; the next visit checks the folder again.
  -- The right-hand sides read each row as it was (its previous request, its attempts).
  update private.result_purges r
     set attempts = r.attempts + 1,
         last_error = problems ->> r.last_request_id::text,
         next_attempt_at = at + private.storage_purge_backoff(r.attempts),
         last_request_id = request,
         last_request_at = at
   where r.job_id = any (job_ids);
  return 1;
end
$$;
comment on function private.send_result_purge(uuid[], text[], timestamptz) is
  'API: Private. Result purge: sends one Storage delete for the given object names and records it on each given purge (attempts, backoff, the previous request''s problem in last_error, read once per previous request); without the Storage secrets, puts them off a minute. Returns the requests sent (1 or 0).';

select private.pin_search_paths();
