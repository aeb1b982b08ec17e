-- Why: a delivery that failed midway (a download or an upload failed after some of its images were
-- stored, or it gave up waiting) told the database nothing: the kie-callback function deleted what
-- it had stored, and when that Storage delete failed too (most likely while Storage itself is
-- failing, which is what stopped the upload), the images stayed until the job's folder purge: for
-- the job's whole retention, and for good when the job had already finished, been deleted or gone
-- with its account and its purge was done before this delivery stored anything.
--
-- private.callback_discard lets the function hand such a delivery to the database when its own
-- delete failed: it records a purge of the delivery's folder through private.discard_delivery,
-- the same one callback_complete records for a delivery it does not take, and the results-retention
-- tick (private.purge_discarded_deliveries) deletes what is left there.
--
-- The role gains nothing it did not have: callback_complete with a task that is not the job's
-- already records this purge for any delivery folder of a job. The same guards hold: only a folder
-- that all the paths share, of that job under its owner's folder (for a job gone with its account:
-- under that account's folder, while its deletion is on record), never the folder the job's
-- result_urls lists, one open purge per folder; and a delivery whose folder is being purged cannot
-- complete the job (KL041). The job's pipeline row is locked as callback_complete locks it, so a
-- completion with that folder either comes first (and the folder is kept) or is refused.

create or replace function private.callback_discard(job_id uuid, object_paths text[], at timestamptz default now())
returns text
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  owner uuid;
begin
  -- Held until commit, like callback_complete holds it: the two never interleave for one job.
  perform from private.job_pipeline p where p.job_id = callback_discard.job_id for update;
  select j.user_id into owner from public.generation_jobs j where j.id = callback_discard.job_id;
  if not found then
    -- Gone with its account while the delivery was on its way: its images lie in the deleted
    -- account's folder, whose purge may be done by now.
    owner := case when split_part(object_paths[1], '/', 2) ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                  then split_part(object_paths[1], '/', 2)::uuid end;
    if owner is null
       or exists (select from public.profiles pr where pr.id = owner)
       or not exists (select from private.storage_purges sp
                       where sp.reason = 'account_deleted' and sp.bucket_id = 'generated-images'
                         and sp.path = owner::text || '/') then
      return null;
    end if;
  end if;
  return private.discard_delivery(job_id, owner, object_paths, at);
end
$$;
comment on function private.callback_discard(job_id uuid, object_paths text[], at timestamptz) is
  'API: Private. Callback function: a delivery that failed midway (a download or upload failed after some images were stored) and whose own Storage delete failed too: records the purge of its delivery folder (private.discard_delivery: storage_purges, delivery_discarded), unless the paths are not all in one delivery folder of that job under its owner (or, for a job gone with its account, under that deleted account''s folder), or the job''s result_urls lists that folder. Returns the folder (also when its purge was already open), or null when nothing was recorded.';
grant execute on function private.callback_discard(uuid, text[], timestamptz) to kiln_callback;

comment on role kiln_callback is
  'The kie-callback Edge Function''s login: of ours, executes the five callback functions in private and nothing else; '
  'like any login it also reaches pg_net''s PUBLIC grants (queued requests with their headers), so its password is as secret as the KIE key.';
