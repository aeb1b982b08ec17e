-- Fixture for the Storage purges of deleted accounts and expired uploads: the Vault secrets the
-- Storage API needs, no purge left open by anything else, the walk over user-uploads at its
-- start, and functions that place objects and jobs. Undone by the test's rollback.
delete from vault.secrets where name in ('project_url', 'service_role_key');
select vault.create_secret('https://project.example.test/', 'project_url');
select vault.create_secret('service-key-for-tests', 'service_role_key');
update private.result_purges set done_at = now() where done_at is null;
update private.storage_purges set done_at = now() where done_at is null;
update private.upload_sweep set after_name = null, pass_started_at = null;
update public.plans set max_active_jobs = 1000, starts_per_minute = 1000;

-- An object as the Storage server writes it, last written `age` ago.
create function pg_temp.put_object(bucket text, name text, age interval default '0'::interval)
returns void
language sql
as $$
  insert into storage.objects (bucket_id, name, created_at, updated_at) values (bucket, name, now() - age, now() - age)
$$;

-- What the Storage server does when it deletes objects.
create function pg_temp.storage_deletes(bucket text, pattern text)
returns void
language plpgsql
as $$
begin
  perform set_config('storage.allow_delete_query', 'true', true);
  delete from storage.objects o where o.bucket_id = bucket and o.name like pattern;
  perform set_config('storage.allow_delete_query', 'false', true);
end
$$;

-- A job of `who` in `status` whose input_image_urls are `urls` (started as the app does).
create function pg_temp.job_listing(who text, status text, urls text[])
returns uuid
language plpgsql
as $$
declare
  job_id uuid;
begin
  if not exists (select 1 from auth.users u where u.raw_user_meta_data ->> 'test_identifier' = who) then
    perform tests.create_supabase_user(who);
    perform public.grant_credits(tests.get_supabase_uid(who), 100, 'test credits');
  end if;
  perform tests.authenticate_as(who);
  select (public.start_generation(prompt => 'a portrait in clay')).id into job_id;
  if status = 'failed' then
    perform public.cancel_generation(job_id);
  end if;
  perform tests.act_as_owner();
  update public.generation_jobs j set input_image_urls = urls where j.id = job_id;
  if status = 'generating' then
    update public.generation_jobs j set status = 'generating', stage = 'generating' where j.id = job_id;
  end if;
  return job_id;
end
$$;

-- The queued pg_net request with that id: method, URL, headers, body, timeout.
create function pg_temp.queued(request_id bigint)
returns table (method text, url text, headers jsonb, body jsonb, timeout_milliseconds integer)
language sql
as $$
  select q.method::text, q.url, q.headers, convert_from(q.body, 'utf8')::jsonb, q.timeout_milliseconds
    from net.http_request_queue q where q.id = request_id
$$;

-- Deleted jobs of `who`'s (cancelled, refunded), one per id, written at once rather than started
-- one by one: copies of one started as the app does, whose own purge is closed. Their purges and
-- objects are the caller's.
create function pg_temp.deleted_jobs(who text, ids uuid[])
returns void
language plpgsql
as $$
declare
  template uuid;
begin
  perform tests.authenticate_as(who);
  select (public.start_generation(prompt => 'a lighthouse at dusk')).id into template;
  perform public.cancel_generation(template);
  perform public.delete_generation(template);
  perform tests.act_as_owner();
  update private.result_purges set done_at = now() where job_id = template;
  insert into public.generation_jobs (id, user_id, mode, prompt, aspect_ratio, model_key, quality, credits_charged, request,
                                      request_fingerprint, status, stage, error_code, error_message, completed_at,
                                      results_removed_at, deleted_at)
  select c.id, j.user_id, j.mode, j.prompt, j.aspect_ratio, j.model_key, j.quality, 0, j.request, j.request_fingerprint,
         j.status, j.stage, j.error_code, j.error_message, j.completed_at, j.results_removed_at, j.deleted_at
    from unnest(ids) c (id), public.generation_jobs j where j.id = template;
end
$$;
