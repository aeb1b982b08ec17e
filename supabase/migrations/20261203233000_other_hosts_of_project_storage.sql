-- Why: the unsigned and expiry rules of the image URL policy judge only this project's Storage
-- (20261203227000), which they recognised by the host of the Vault secret project_url alone (and
-- <ref>.storage.supabase.co). A project reached through a custom domain (api.example.com for the
-- project) or a CDN in front of its Storage serves the same buckets under the same /storage/v1/
-- paths on another host, which the operator lists in images.allowed_hosts: its public URL of the
-- private user-uploads bucket, or its signed URL whose token had expired, was judged by the host
-- rules alone, accepted and charged, failed at KIE and was refunded, every retry the same.
--
-- The operator now names those hosts in the setting images.project_storage_hosts (a JSON array of
-- host names, empty by default), and both rules judge their URLs as this project's: compared
-- without letter case, port or a trailing dot, like project_url's host. It is a setting, not a
-- Vault secret: it is a host list of the image URL policy, not a credential, and it is checked
-- when written like images.allowed_hosts. An entry is a host name alone (the rules compare hosts,
-- not schemes or ports; no wildcard: a CDN that serves this project's Storage is named exactly),
-- and never one the image URL check refuses before it reads any list (a private network name, a
-- host without a dot), which could never match. Without the row no other host is this project's;
-- while project_url is missing every host is judged, as before.

alter table private.setting_rules drop constraint setting_rules_shape_known;
alter table private.setting_rules add constraint setting_rules_shape_known check (shape in
  ('whole_number', 'http_base_url', 'header_text', 'image_hosts', 'result_hosts', 'storage_hosts', 'url_schemes', 'ports', 'poll_cadence'));
comment on column private.setting_rules.shape is
  'whole_number (min_value to max_value); http_base_url (http(s)://host[:port][/path], no trailing slash); header_text (1 to 200 printable ASCII characters); image_hosts (array of host, *.suffix, * or http(s)://host[:port]); result_hosts (array of host or http(s)://host[:port]); storage_hosts (array of host names alone: no scheme, port or wildcard; not a private network name or a host without a dot); url_schemes (array of "http", "https"); ports (array of whole numbers 1 to 65535); poll_cadence (array of {every_seconds, until_seconds}, every_seconds whole, until_seconds rising, the last one null). Hosts are DNS names or IPv4 addresses; ports 1 to 65535.';

-- As in 20261202090100, with the storage_hosts shape.
create or replace function private.list_entry_problem(shape text, entry jsonb)
returns text
language plpgsql immutable
set search_path = pg_catalog, pg_temp
as $$
declare
  -- A DNS name or an IPv4 address: labels of letters, digits and inner hyphens (lower case; URLs and
  -- host entries are compared lower-cased).
  host_name constant text := '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*';
  text_value text := lower(entry #>> '{}');
  parts text[];
  host text;
begin
  case shape
    when 'ports' then
      if jsonb_typeof(entry) is distinct from 'number' or (entry #>> '{}')::numeric not between 1 and 65535
         or (entry #>> '{}')::numeric <> trunc((entry #>> '{}')::numeric) then
        return 'is not a port (a whole number from 1 to 65535)';
      end if;
      return null;
    when 'url_schemes' then
      if entry not in ('"http"', '"https"') then
        return 'is not "http" or "https"';
      end if;
      return null;
    else
      null;
  end case;
  if jsonb_typeof(entry) is distinct from 'string' or length(text_value) > 253 then
    return 'is not a string of at most 253 characters';
  end if;
  if shape = 'storage_hosts' then
    -- Compared with the host of an image URL only, as project_url's host is.
    if text_value !~ ('^' || host_name || '$') then
      return 'is not a host name alone (no scheme, port, path or wildcard)';
    end if;
    if private.is_private_host_name(text_value) then
      return 'names a private network host, which the image URL check refuses before it reads this list';
    end if;
    if text_value !~ '\.' then
      return 'names a host without a dot, which the image URL check refuses before it reads this list';
    end if;
    return null;
  end if;
  if shape = 'image_hosts' and text_value = '*' then
    return null;
  end if;
  -- host | *.host (image hosts only) | http(s)://host[:port]
  parts := regexp_match(text_value, '^(https?://|\*\.)?(' || host_name || ')(:[0-9]*)?$');
  if parts is null or (parts[1] is not distinct from '*.' and shape <> 'image_hosts')
     or (parts[3] is not null and coalesce(parts[1], '') not like 'http%')
     or not private.url_port_valid(text_value) then
    return case shape when 'image_hosts' then 'is not a host name, *.suffix, * or http(s)://host[:port] (port 1 to 65535)'
                      else 'is not a host name or http(s)://host[:port] (port 1 to 65535)' end;
  end if;
  host := parts[2];
  if shape = 'image_hosts' then
    if private.is_private_host_name(host) then
      return 'names a private network host, which the image URL check refuses even when listed';
    end if;
    if parts[1] is distinct from '*.' and host !~ '\.' then
      return 'names a host without a dot, which the image URL check refuses even when listed';
    end if;
    -- A wildcard only ever matches hosts ending in its suffix: if every such host reads as an IP
    -- address (a numeric last label) or spells one out (10-0-0-1.nip.io), none is accepted.
    if parts[1] = '*.' and (('x.' || host) ~ '(^|\.)([0-9]+|0x[0-9a-f]*)$'
                            or ('x.' || host) ~ '(^|[.-])([0-9]{1,3}[.-]){3}[0-9]{1,3}([.-]|$)') then
      return 'is a wildcard whose every host reads as an IP address, which the image URL check refuses';
    end if;
  elsif parts[1] is null then
    -- A result host entry (not an origin) is only compared after the IP and private-name checks.
    if private.is_private_host_name(host) then
      return 'names a private network host: list it as an origin (http(s)://host:port) if it is meant';
    end if;
    if host ~ '(^|\.)([0-9]+|0x[0-9a-f]*)$' or host ~ '(^|[.-])([0-9]{1,3}[.-]){3}[0-9]{1,3}([.-]|$)' then
      return 'names an IP address: list it as an origin (http(s)://host:port) if it is meant';
    end if;
  end if;
  return null;
end
$$;
comment on function private.list_entry_problem(text, jsonb) is
  'API: Private. Why one entry of a list setting (image_hosts, result_hosts, storage_hosts, url_schemes, ports) can never match what its reader compares, or null.';

-- As in 20261202090100, with storage_hosts among the list shapes.
create or replace function private.setting_value_problem(rule private.setting_rules, value jsonb)
returns text
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  entry jsonb;
  previous_until numeric;
  position integer := 0;
  problem text;
  -- A DNS name or an IPv4 address: labels of letters, digits and inner hyphens (lower case; URLs and
  -- host entries are compared lower-cased).
  host_name constant text := '[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*';
begin
  case rule.shape
    when 'whole_number' then
      if jsonb_typeof(value) is distinct from 'number' or (value #>> '{}')::numeric not between rule.min_value and rule.max_value
         or (value #>> '{}')::numeric <> trunc((value #>> '{}')::numeric) then
        return format('must be a whole number from %s to %s', rule.min_value, rule.max_value);
      end if;
    when 'http_base_url' then
      if jsonb_typeof(value) is distinct from 'string' or length(value #>> '{}') > 2048
         or lower(value #>> '{}') !~ ('^https?://' || host_name || '(:[0-9]{1,5})?(/[a-z0-9._~-]+)*$')
         or not private.url_port_valid(value #>> '{}') then
        return 'must be a string http(s)://host[:port][/path], without a trailing slash';
      end if;
    when 'header_text' then
      if jsonb_typeof(value) is distinct from 'string' or (value #>> '{}') !~ '^[ -~]{1,200}$' then
        return 'must be a string of 1 to 200 printable ASCII characters';
      end if;
    when 'image_hosts', 'result_hosts', 'storage_hosts', 'url_schemes', 'ports' then
      if jsonb_typeof(value) is distinct from 'array' or jsonb_array_length(value) > 200 then
        return 'must be a JSON array (at most 200 entries)';
      end if;
      for entry in select e from jsonb_array_elements(value) e loop
        problem := private.list_entry_problem(rule.shape, entry);
        if problem is not null then
          return format('has an entry that %s: %s', problem, left(entry::text, 100));
        end if;
      end loop;
    when 'poll_cadence' then
      if jsonb_typeof(value) is distinct from 'array' or jsonb_array_length(value) not between 1 and 20 then
        return 'must be a JSON array of 1 to 20 {"every_seconds", "until_seconds"} entries';
      end if;
      for entry in select e from jsonb_array_elements(value) e loop
        position := position + 1;
        if jsonb_typeof(entry) is distinct from 'object'
           or (select array_agg(k order by k) from jsonb_object_keys(entry) k) is distinct from array['every_seconds', 'until_seconds']
           or jsonb_typeof(entry -> 'every_seconds') is distinct from 'number'
           or (entry ->> 'every_seconds')::numeric not between 1 and 3600
           or (entry ->> 'every_seconds')::numeric <> trunc((entry ->> 'every_seconds')::numeric)
           or jsonb_typeof(entry -> 'until_seconds') not in ('number', 'null') then
          return format('entry %s must be {"every_seconds": 1 to 3600, "until_seconds": seconds or null}', position);
        end if;
        if jsonb_typeof(entry -> 'until_seconds') = 'null' then
          if position < jsonb_array_length(value) then
            return format('entry %s has until_seconds null but is not the last', position);
          end if;
        elsif (entry ->> 'until_seconds')::numeric <= coalesce(previous_until, 0) then
          return format('entry %s: until_seconds must rise from one entry to the next', position);
        else
          previous_until := (entry ->> 'until_seconds')::numeric;
        end if;
      end loop;
      if jsonb_typeof(value -> -1 -> 'until_seconds') <> 'null' then
        return 'the last entry must have until_seconds null (the interval for tasks older than every other entry)';
      end if;
  end case;
  return null;
end
$$;
comment on function private.setting_value_problem(private.setting_rules, jsonb) is
  'API: Private. What is wrong with a settings value under its rule (private.setting_rules), or null when it is fine.';

-- The rule first: the settings trigger reads it.
insert into private.setting_rules (key, shape, min_value, max_value, may_be_deleted) values
  ('images.project_storage_hosts', 'storage_hosts', null, null, true);
insert into private.settings (key, value, description) values
  ('images.project_storage_hosts', '[]',
   'Other hosts that serve this project''s Storage under its /storage/v1/ paths: a custom domain or a CDN in front of it '
   || '(JSON array of host names, no scheme, port or wildcard). The image URL policy judges their URLs as this project''s, '
   || 'like those of the Vault secret project_url''s host: an unsigned URL of a private bucket, a signed URL without a token '
   || 'or with an expired one is refused. They must also be in images.allowed_hosts to be accepted at all. '
   || 'A missing row is an empty list.');

-- As in 20261203227000, with the hosts of images.project_storage_hosts.
create or replace function private.image_url_on_project_storage(url text)
returns boolean
language sql
stable
set search_path = pg_catalog, pg_temp
as $$
  select case when p.host is null then true
              else coalesce(u.host in (p.host, pg_catalog.regexp_replace(p.host, '^([a-z0-9-]+)[.]supabase[.]co$', '\1.storage.supabase.co'))
                            or u.host in (select pg_catalog.lower(e.host)
                                            from pg_catalog.jsonb_array_elements_text(
                                                   coalesce(private.setting('images.project_storage_hosts'), '[]')) as e (host)),
                            false)
         end
    from (select pg_catalog.rtrim(pg_catalog.lower(pg_catalog.substring(url,
                   '^[A-Za-z][A-Za-z0-9+.-]*://(?:[^/?#@]*@)?([^/?#:]*)')), '.') as host) as u,
         (select nullif(pg_catalog.rtrim(pg_catalog.lower(pg_catalog.substring(private.secret('project_url'),
                   '^[A-Za-z][A-Za-z0-9+.-]*://(?:[^/?#@]*@)?([^/?#:]*)')), '.'), '') as host) as p
$$;
comment on function private.image_url_on_project_storage(url text) is
  'API: Private. Whether an image URL may point at this project''s Storage: its host is the host of the Vault secret project_url (or, for <ref>.supabase.co, the direct Storage host <ref>.storage.supabase.co) or one the setting images.project_storage_hosts names (a custom domain or CDN in front of it), compared without letter case, port or a trailing dot. True for every host while project_url is missing or names no host; false for a URL without a host.';
