-- Why: some list entries still passed their rule (20261201150100) though their readers can never
-- match them, so they silently did nothing:
-- - a port with a leading zero (https://files.kie.test:08443): the readers compare the port as
--   written without zeros, so the entry never matches. (kie.base_url with :0443 did work, as curl
--   reads the port as a number; it is refused too, so every port in the settings is written one way.)
-- - images.allowed_hosts entries naming a private network host (localhost, *.internal,
--   http://storage.local:8080) or a host without a dot (storage): the image URL check refuses
--   those hosts even when listed exactly; and wildcards whose every host reads as an IP address
--   (*.1, *.10-0-0-1.nip.io), which it refuses before it reads the wildcards.
-- - results.allowed_hosts host entries that are private names or IP addresses: the result URL
--   check refuses those unless listed as an origin (http(s)://host:port).
-- Each list entry is now checked by private.list_entry_problem, which says why an entry cannot
-- work. Values stored before this migration are checked again: it stops, naming them, if one
-- breaks the new rules.

-- Whether the port of a URL or origin (scheme://host:port...), if it names one, is 1 to 65535
-- written without leading zeros.
create or replace function private.url_port_valid(url text)
returns boolean
language sql immutable strict
set search_path = pg_catalog, pg_temp
as $$
  select coalesce(substring(url from '^[A-Za-z][A-Za-z0-9+.-]*://[^/:]*:([1-9][0-9]{0,4})(/|$)')::integer <= 65535,
                  url !~ '://[^/:]*:')
$$;
comment on function private.url_port_valid(text) is
  'API: Private. Whether the port a URL or origin names, if any, is a whole number from 1 to 65535 without leading zeros (false for an empty, zero-led or oversized port).';

-- Why one entry of a list setting (shapes image_hosts, result_hosts, url_schemes, ports) can never
-- be used by its reader, or null. Mirrors private.image_url_host_problem and
-- private.result_url_problem, which decide what the entries are compared with.
create function private.list_entry_problem(shape text, entry jsonb)
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
  'API: Private. Why one entry of a list setting (image_hosts, result_hosts, url_schemes, ports) can never match what its reader compares, or null.';

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
    when 'image_hosts', 'result_hosts', 'url_schemes', 'ports' then
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

update private.settings
   set description = 'Hosts the callback function downloads KIE result images from (JSON array of strings). An entry is a '
                     || 'host name (https on port 443 only; not an IP address or private network name) or an exact origin '
                     || 'http(s)://host[:port] (the only way an IP address, a private name or plain http is accepted; local '
                     || 'development only). Redirects are followed only to accepted hosts.'
 where key = 'results.allowed_hosts';

-- Values stored before this migration: stop here, naming them, if any breaks its rule.
do $$
declare
  broken text;
begin
  select string_agg(format('%s = %s (%s)', s.key, left(s.value::text, 100), private.setting_value_problem(r, s.value)), '; ' order by s.key)
    into broken
    from private.settings s
    join private.setting_rules r on r.key = s.key
   where private.setting_value_problem(r, s.value) is not null;
  if broken is not null then
    perform private.raise_error('KL053', 'invalid setting',
      'settings stored before this migration break their rules: ' || broken,
      'Fix them with update private.settings, then apply the migration again.');
  end if;
end
$$;

select private.pin_search_paths();
