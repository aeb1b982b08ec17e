-- Why: some setting shapes (20261201140100) allowed values their readers can never use, or
-- refused ones they can:
-- - kie.base_url took port 99999 and hosts such as "." or "-x-": every createTask then failed in
--   pg_net at the transport level, instead of the operator hearing it when setting the value.
-- - origin entries of images.allowed_hosts took any scheme (ftp://host) and results.allowed_hosts
--   ports 0 or 99999; the image URL check never matches such an entry (it accepts ports 1 to
--   65535) and KIE fetches http(s) only, so the entry silently did nothing.
-- - a wildcard of one label (*.test) was refused, though the image URL check matches it as any
--   other suffix (and * alone, any public name, is allowed).
-- Host names now follow the image URL check's own syntax, every port is 1 to 65535, and origin
-- entries are http(s). Values stored before this migration are checked again: it stops, naming
-- them, if one breaks the new rules.

-- Whether the port of a URL or origin (scheme://host:port...), if it names one, is 1 to 65535.
create function private.url_port_valid(url text)
returns boolean
language sql immutable strict
set search_path = pg_catalog, pg_temp
as $$
  select coalesce(substring(url from '^[A-Za-z][A-Za-z0-9+.-]*://[^/:]*:([0-9]{1,5})(/|$)')::integer between 1 and 65535,
                  url !~ '://[^/:]*:')
$$;
comment on function private.url_port_valid(text) is
  'API: Private. Whether the port a URL or origin names, if any, is a whole number from 1 to 65535 (false for an empty or oversized port).';

create or replace function private.setting_value_problem(rule private.setting_rules, value jsonb)
returns text
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  entry jsonb;
  previous_until numeric;
  position integer := 0;
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
        if not (case rule.shape
                 when 'ports' then jsonb_typeof(entry) = 'number' and (entry #>> '{}')::numeric between 1 and 65535
                                   and (entry #>> '{}')::numeric = trunc((entry #>> '{}')::numeric)
                 when 'url_schemes' then entry in ('"http"', '"https"')
                 when 'image_hosts' then jsonb_typeof(entry) = 'string' and length(entry #>> '{}') <= 253
                   and lower(entry #>> '{}') ~ ('^(\*|\*\.' || host_name || '|' || host_name || '|https?://' || host_name || '(:[0-9]{1,5})?)$')
                   and private.url_port_valid(entry #>> '{}')
                 else jsonb_typeof(entry) = 'string' and length(entry #>> '{}') <= 253
                   and lower(entry #>> '{}') ~ ('^(' || host_name || '|https?://' || host_name || '(:[0-9]{1,5})?)$')
                   and private.url_port_valid(entry #>> '{}')
               end) then
          return format('has an entry that is not %s: %s',
            case rule.shape when 'ports' then 'a port (a whole number from 1 to 65535)'
                            when 'url_schemes' then '"http" or "https"'
                            when 'image_hosts' then 'a host name, *.suffix, * or http(s)://host[:port] (port 1 to 65535)'
                            else 'a host name or http(s)://host[:port] (port 1 to 65535)' end,
            left(entry::text, 100));
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

comment on column private.setting_rules.shape is
  'whole_number (min_value to max_value); http_base_url (http(s)://host[:port][/path], no trailing slash); header_text (1 to 200 printable ASCII characters); image_hosts (array of host, *.suffix, * or http(s)://host[:port]); result_hosts (array of host or http(s)://host[:port]); url_schemes (array of "http", "https"); ports (array of whole numbers 1 to 65535); poll_cadence (array of {every_seconds, until_seconds}, every_seconds whole, until_seconds rising, the last one null). Hosts are DNS names or IPv4 addresses; ports 1 to 65535.';

update private.settings
   set description = 'Image URL hosts start_generation accepts (JSON array of strings). An entry is a host name (storage.example.com), '
                     || '*.suffix (any subdomain of suffix, not suffix itself), * (any public DNS name), or an origin http(s)://host[:port] '
                     || '(exactly that scheme, host and port, regardless of the scheme and port lists). IP addresses only as an exact entry.'
 where key = 'images.allowed_hosts';

-- Values stored before this migration: stop here, naming them, if any breaks the new rules.
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
