-- Why: the Storage purge of expired uploads (20261201130000) compares object names with the
-- names in a job's image URLs, but a fetcher resolves "." and ".." segments (also written %2e)
-- and may decode a percent-encoded letter. A URL such as .../user-uploads/<uid>/./old.jpg
-- reaches old.jpg while naming another object, so it slipped past both the refusal of an upload
-- being deleted and the in-use check. The image URL policy now refuses a path that does not name
-- its object plainly: a "." or ".." segment, an empty segment (//), or a percent-encoded letter,
-- digit, "-", ".", "_" or "~" (RFC 3986: producers should not encode these; Storage's URLs do
-- not). Only the path is read; the query and fragment are left alone.

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
