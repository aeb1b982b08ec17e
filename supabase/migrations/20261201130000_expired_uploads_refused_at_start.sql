-- Why: an upload past uploads.retention_days could be lost by a job that started with it just
-- before its delete went out. The purge decided "no unfinished job lists it", queued the Storage
-- delete (pg_net sends it after the commit), and a start that committed in between, or in the
-- second before pg_net sent it, still listed the photo. KIE then found the photo gone, the task
-- failed, and the user got the credits back but not the image.
--
-- Both sides now meet on the owner's profile row. A start locks that row first thing (for update).
-- - The purge share-locks the owners' profile rows before it checks which of its uploads are in
--   use. A start that got there first has committed its job by then, so the purge sees the job and
--   keeps the photo. An owner whose row is locked right now (a start, a grant left open) is not
--   waited for: that owner's uploads wait for the next run, so one open transaction stalls neither
--   the tick nor anybody's starts, and the locks cannot deadlock.
-- - A start that comes after finds the purge committed. A job may not list the upload of its
--   owner's that an open purge decided to delete (KL013): the app is asked to upload the photo
--   again under a new name. The check runs on the job's insert, so it covers start_generation
--   and retry_generation alike.
-- - A delete request acts on a name, not on a version: a request sent before the photo was
--   uploaded again under the same name deletes the new photo too. So a purge stays open until
--   its last request is settled (answered, or neither queued nor answered a minute after it was
--   sent), whether the photo was replaced (then it is withdrawn) or is gone (then it is done).
--   Meanwhile a start listing that name is refused; once settled, a photo uploaded after the
--   decision is accepted.
-- - The URL a job lists must name its object plainly (private.image_url_problem): no "." or ".."
--   segment, no empty segment, no percent-encoded letter, digit, "-", ".", "_" or "~". A fetcher
--   resolves those, so a URL spelled another way would reach the photo while naming another one.
--
-- A URL into another user's folder neither keeps an upload alive (private.upload_keys_in_use)
-- nor is refused here: a user learns nothing about another user's uploads from a start.

-- The user-uploads object names a URL stands for: the path as written, and percent-decoded when
-- that decodes to UTF-8 (a name that is no UTF-8 cannot exist in storage.objects).
create function private.upload_names_in_url(url text)
returns text[]
language plpgsql immutable strict
set search_path = pg_catalog, pg_temp
as $$
declare
  path text := private.upload_path_in_url(url);
  decoded text;
begin
  if path is null then
    return '{}';
  end if;
  begin
    decoded := pg_catalog.convert_from(private.percent_decode(path), 'UTF8');
  exception when character_not_in_repertoire then
    decoded := null;
  end;
  return array_remove(array[path, decoded], null);
end
$$;
comment on function private.upload_names_in_url(text) is
  'API: Private. The user-uploads object names a Storage URL can stand for: its path as written and, when that is UTF-8, percent-decoded. Empty if the URL names no user-uploads object.';

create function private.refuse_expiring_uploads()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  expiring_index bigint;
begin
  -- Only names in the owner's own folder, each through storage_purges_one_open_per_target. An
  -- open purge refuses its name while the object there is the one it decided on (written before
  -- the decision) or is gone, and, whatever is there now, while a request it sent can still act.
  -- A photo uploaded again under the same name after the decision is the app's new photo: once
  -- no request can touch it, the purge's next visit withdraws.
  select u.position into expiring_index
    from pg_catalog.unnest(new.input_image_urls) with ordinality as u (url, position)
   where exists (select from private.storage_purges p
                  where p.bucket_id = 'user-uploads' and p.reason = 'upload_expired' and p.done_at is null
                    and p.path = any (private.upload_names_in_url(u.url))
                    and pg_catalog.starts_with(p.path, new.user_id::text || '/')
                    and (not private.storage_request_settled(p.last_request_id, p.last_request_at, pg_catalog.now())
                         or not exists (select from storage.objects o
                                         where o.bucket_id = 'user-uploads' and o.name = p.path
                                           and greatest(o.created_at, o.updated_at) >= p.requested_at)))
   order by u.position
   limit 1;
  if found then
    perform private.raise_error('KL013', 'image URL not accepted',
      pg_catalog.format('image %s: the upload is past its retention and is being deleted', expiring_index),
      'Upload the photo again, under a new name, and start with its URL.');
  end if;
  return new;
end
$$;
comment on function private.refuse_expiring_uploads() is
  'API: Private. Trigger on public.generation_jobs (insert of a job with images): refuses (KL013) an image URL that names an object in the owner''s user-uploads folder with an open upload_expired purge, while that object is the one the purge decided on (or is gone) or a delete request it sent can still act.';

create trigger generation_jobs_refuse_expiring_uploads before insert on public.generation_jobs
  for each row when (pg_catalog.cardinality(new.input_image_urls) > 0)
  execute function private.refuse_expiring_uploads();

-- Whether a Storage delete request can still act. pg_net removes a request from its queue in the
-- transaction that stores its answer, so one that is queued may still run, and one that is
-- neither queued nor answered was lost (a crash empties the unlogged queue). The minute after
-- sending is a margin for a worker that drops a request before storing its answer.
create function private.storage_request_settled(request_id bigint, sent_at timestamptz, at timestamptz)
returns boolean
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select request_id is null
      or exists (select from net._http_response h where h.id = request_id and h.created >= sent_at - interval '1 second')
      or (not exists (select from net.http_request_queue q where q.id = request_id)
          and sent_at < at - interval '1 minute')
$$;
comment on function private.storage_request_settled(bigint, timestamptz, timestamptz) is
  'API: Private. True when that Storage delete request (pg_net id, queued at sent_at) can no longer delete anything at `at`: none was sent, it was answered, or it is out of pg_net''s queue and was sent over a minute ago.';

-- The purge: as before, except for the owners' profile rows, share-locked before the check of
-- which uploads are still in use, and a withdrawal that waits for the request sent before.
create or replace function private.purge_expired_uploads(at timestamptz default now(), max_objects integer default 1000)
returns integer
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  due_ids bigint[];
  due_names text[];
  names text[];
  locked_owners uuid[];
  request bigint;
begin
  if max_objects is null or max_objects < 1 or max_objects > 1000 then
    perform private.raise_error('KL052', 'invalid batch size',
      pg_catalog.format('max_objects must be from 1 to 1000 (the Storage API deletes at most 1000 names per request), got %s', max_objects), null);
  end if;
  -- Finished upload purges are kept as long as the request log, then forgotten.
  delete from private.storage_purges p
   where p.id in (select d.id from private.storage_purges d
                   where d.done_at < at - pg_catalog.make_interval(secs => private.setting_number('housekeeping.request_log_retention_seconds')::double precision)
                     and d.reason = 'upload_expired'
                   order by d.done_at limit max_objects);

  select pg_catalog.array_agg(d.id), pg_catalog.array_agg(d.path) into due_ids, due_names
    from (select p.id, p.path from private.storage_purges p
           where p.reason = 'upload_expired' and p.done_at is null and p.next_attempt_at <= at
           order by p.next_attempt_at, p.id
           limit max_objects
             for update skip locked) d;
  if due_ids is null then
    return 0;
  end if;
  -- Gone: done, once no request sent for it can still act (it would delete a photo uploaded again
  -- under the name, which a start may then list). Until then it is visited again below.
  update private.storage_purges p set done_at = at, last_error = null
   where p.id = any (due_ids)
     and not exists (select 1 from storage.objects o where o.bucket_id = 'user-uploads' and o.name = p.path)
     and private.storage_request_settled(p.last_request_id, p.last_request_at, at);
  -- A start holds its user's profile row until it commits (create_generation_job locks it for
  -- update). Once the owner's row is share-locked here, every start that could list these
  -- uploads has either committed its job, which the check below then sees, or will start after
  -- this purge commits, and then private.refuse_expiring_uploads refuses the upload. Key share:
  -- balance updates are not held up. Skip locked: an owner whose row is locked now (a start in
  -- progress, a grant left open) keeps that owner's uploads for the next run, instead of this
  -- run waiting, holding other owners' rows, or deadlocking with a transaction that locks two.
  locked_owners := array(
    select pr.id from public.profiles pr
     where pr.id in (select p.user_id from private.storage_purges p where p.id = any (due_ids) and p.done_at is null)
       for key share of pr skip locked);
  select pg_catalog.array_agg(p.id), pg_catalog.array_agg(p.path) into due_ids, due_names
    from private.storage_purges p
   where p.id = any (due_ids) and p.done_at is null
     and (p.user_id is null or p.user_id = any (locked_owners)
          or not exists (select from public.profiles pr where pr.id = p.user_id));
  if due_ids is null then
    return 0;
  end if;
  names := array(select private.expired_uploads(due_names, at) order by 1);
  -- No longer expired (replaced since, or a job started with it before the walk saw it), or gone
  -- while a request can still act: the decision is withdrawn, and the walk records it again once
  -- it expires. Not while the request sent for it before can still act: it would delete the name
  -- a job may list.
  delete from private.storage_purges p
   where p.id = any (due_ids) and p.done_at is null and not (p.path = any (names))
     and private.storage_request_settled(p.last_request_id, p.last_request_at, at);
  update private.storage_purges p set next_attempt_at = at + interval '30 seconds'
   where p.id = any (due_ids) and p.done_at is null and not (p.path = any (names));
  if pg_catalog.cardinality(names) = 0 then
    return 0;
  end if;
  request := private.send_storage_delete('user-uploads', names);
  if request is null then
    update private.storage_purges p
       set last_error = 'the Vault secrets project_url and service_role_key are needed to call the Storage API',
           next_attempt_at = at + interval '1 minute'
     where p.id = any (due_ids) and p.done_at is null and p.path = any (names);
    return 0;
  end if;
  -- Each row backs off by its own attempts (its target is one object: no request before this
  -- one deleted anything of it), and keeps how its previous request failed, if it did.
  update private.storage_purges p
     set attempts = p.attempts + 1,
         last_error = private.storage_delete_problem(p.last_request_id, p.last_request_at),
         next_attempt_at = at + private.storage_purge_backoff(p.attempts),
         last_request_id = request,
         last_request_at = at
   where p.id = any (due_ids) and p.done_at is null and p.path = any (names);
  return 1;
end
$$;
comment on function private.purge_expired_uploads(timestamptz, integer) is
  'API: Private. Tick: for the due upload purges (at most max_objects, at most 1000), finishes those whose object is gone, leaves those whose owner has a start in progress for the next run, drops those no longer expired once the request sent before is settled, and asks the Storage API (pg_net, service key) to delete the rest in one request. Returns the requests sent (0 or 1).';

-- The image URL policy, with the rules for the path (see the top of this file).
create or replace function private.image_url_problem(url text)
returns text
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  allowed_hosts jsonb := coalesce(private.setting('images.allowed_hosts'), '[]');
  parts text[];
  scheme text;
  authority text;
  host text;
  port integer;
  origin text;
  entry text;
  matched_by text;
  path text;
begin
  if url is null then
    return 'the URL is missing';
  end if;
  if length(url) > 2048 then
    return 'the URL is longer than 2048 characters';
  end if;
  -- What RFC 3986 allows unencoded, minus the quote ('): no spaces, controls, non-ASCII, quotes,
  -- backticks, angle brackets, braces, pipes, backslashes or carets.
  if url !~ '^[A-Za-z0-9._~:/?#\[\]@!$&()*+,;=%-]+$' then
    return 'the URL has spaces, quotes or other characters that must be percent-encoded';
  end if;
  if url ~ '%([^0-9A-Fa-f]|.[^0-9A-Fa-f]|.?$)' then
    return 'the URL has a malformed percent escape';
  end if;
  parts := regexp_match(url, '^([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)([/?#].*)?$');
  if parts is null then
    return 'not an absolute URL (scheme://host/path)';
  end if;
  -- The path must name its object plainly. A fetcher resolves "." and ".." segments (also
  -- percent-encoded) and may decode an encoded letter, so such a URL reaches an object it does
  -- not spell, and the checks that compare upload names (retention, in use) would miss it.
  path := pg_catalog.substring(coalesce(parts[3], ''), '^[^?#]*');
  if path ~* '(^|/)(\.|%2e){1,2}(/|$)' then
    return 'the URL path has a "." or ".." segment';
  end if;
  if path like '%//%' then
    return 'the URL path has an empty segment (//)';
  end if;
  if path ~* '%(2[de]|3[0-9]|4[1-9a-f]|5[0-9af]|6[1-9a-f]|7[0-9ae])' then
    return 'the URL path percent-encodes a letter, a digit or one of - . _ ~ (they need no encoding)';
  end if;
  scheme := lower(parts[1]);
  authority := parts[2];
  if authority like '%@%' then
    return 'user names and passwords (user@host) are not accepted';
  end if;
  if authority like '[%' then
    return 'IPv6 address hosts are not accepted';
  end if;

  parts := regexp_match(authority, '^([^:]*)(:([0-9]*))?$');
  if parts is null then
    return 'the host or port is malformed';
  end if;
  host := lower(parts[1]);
  if parts[2] is not null then
    if parts[3] !~ '^[1-9][0-9]{0,4}$' or parts[3]::integer > 65535 then
      return 'the port must be a number from 1 to 65535';
    end if;
    port := parts[3]::integer;
  else
    port := case scheme when 'https' then 443 when 'http' then 80 end;
  end if;

  if length(host) > 253
     or host !~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$' then
    return 'the host is not a valid host name';
  end if;
  origin := scheme || '://' || host || ':' || coalesce(port::text, '');

  -- Exact entries first: a host name, or an origin (scheme://host[:port]) listed as is. This is
  -- the only way an IP address is ever accepted (the local stack lists its loopback gateway).
  select l.entry into matched_by
    from (select lower(e) as entry from jsonb_array_elements_text(allowed_hosts) e) l
   where l.entry = host
      or l.entry || case when l.entry ~ '^[a-z][a-z0-9+.-]*://[^:/]+$'
                         then ':' || case when l.entry like 'https://%' then '443' when l.entry like 'http://%' then '80' else '' end
                         else '' end = origin
   limit 1;

  if matched_by is null and host ~ '(^|\.)([0-9]+|0x[0-9a-f]*)$' then
    return format('host %s is an IP address', host);
  end if;
  if private.is_private_host_name(host) then
    return format('host %s is a private network name', host);
  end if;
  if host !~ '\.' then
    return format('host %s has no dot: a public host name is needed', host);
  end if;
  if matched_by like '%://%' then
    return null;
  end if;

  if not coalesce(private.setting('images.allowed_schemes'), '["https"]') ? scheme then
    return format('%s URLs are not accepted', scheme);
  end if;
  if port is null or not coalesce(private.setting('images.allowed_ports'), '[443]') @> to_jsonb(port) then
    return format('port %s is not accepted', coalesce(port::text, 'unknown'));
  end if;
  if matched_by is not null then
    return null;
  end if;

  -- Wildcards match DNS names only, and never a name that spells out an IPv4 address
  -- (127.0.0.1.nip.io, 10-0-0-5.sslip.io): such services answer with the address they spell.
  for entry in select lower(e) from jsonb_array_elements_text(allowed_hosts) e loop
    if entry = '*' or (entry like '*.%' and host like '%.' || substr(entry, 3)) then
      matched_by := entry;
      exit;
    end if;
  end loop;
  if matched_by is null then
    if jsonb_array_length(allowed_hosts) = 0 then
      return 'no image host is accepted yet (the operator sets images.allowed_hosts)';
    end if;
    return format('host %s is not an accepted image host', host);
  end if;
  if host ~ '(^|[.-])([0-9]{1,3}[.-]){3}[0-9]{1,3}([.-]|$)' then
    return format('host %s spells out an IP address', host);
  end if;
  return null;
end
$$;
comment on function private.image_url_problem(text) is
  'API: Private. Why an image URL breaks the image host policy (settings images.*), or null when it is accepted.';

select private.pin_search_paths();
