-- Why: the unsigned and expiry rules of the image URL policy (20261203223200, 20261203223000)
-- matched a Storage path on any host and judged it as this project's. A public URL of another
-- Supabase project's bucket that happens to be called user-uploads (a partner's public bucket, or
-- a CDN in front of one, once listed in images.allowed_hosts) was refused because this project's
-- user-uploads is private, and another host's signed URL was refused by a token this project
-- never issued. Those hosts are the host policy's business alone.
--
-- Both rules now judge only this project's Storage: the host of the Vault secret project_url
-- (compared without letter case, port or a trailing dot, so https://REF.supabase.co:443 is still
-- this project), and the project's direct Storage host <ref>.storage.supabase.co, which serves the
-- same buckets. While project_url is missing (the missing_secret alert says so) any host may be
-- this project's, so every host is judged, as before.
--
-- Looking again at what an app could send to get an unusable URL of this project accepted: a
-- signed URL whose expired token came after a valid one (?token=<valid>&token=<expired>: only the
-- last token was read), whose token parameter or token was percent-encoded (?tok%65n=..., dots
-- written %2E: the Storage server decodes the query, the rule did not), or that had no token at
-- all (/object/sign/<bucket>/... with the query dropped). The expiry rule now reads every token
-- parameter as the server decodes it and refuses the URL if any has expired; the unsigned rule
-- refuses a signed URL of a bucket here that carries no token. Letter case of the host, the port,
-- and a trailing dot are covered by the host comparison above; ".", ".." and percent-encoded
-- letters in the path are already refused by private.image_url_path_problem, and a trailing dot
-- by the host policy.

create function private.url_query_values(url text, name text)
returns text[]
language plpgsql
immutable
strict
set search_path = pg_catalog, pg_temp
as $$
declare
  part text;
  key text;
  value text;
  found text[] := '{}';
begin
  -- The query as a web server reads it: parameters split at &, name and value at the first =,
  -- + as a space, then %XX decoded.
  foreach part in array coalesce(pg_catalog.string_to_array(pg_catalog.substring(url, '^[^?#]*[?]([^#]*)'), '&'), '{}') loop
    begin
      key := pg_catalog.convert_from(private.percent_decode(pg_catalog.translate(pg_catalog.split_part(part, '=', 1), '+', ' ')), 'UTF8');
      value := case when pg_catalog.strpos(part, '=') = 0 then ''
                    else pg_catalog.convert_from(private.percent_decode(pg_catalog.translate(
                           pg_catalog.substr(part, pg_catalog.strpos(part, '=') + 1), '+', ' ')), 'UTF8') end;
    exception when character_not_in_repertoire or untranslatable_character then
      continue; -- not UTF-8 once decoded: no name this policy reads, nor a token
    end;
    if key = name then
      found := found || value;
    end if;
  end loop;
  return found;
end
$$;
comment on function private.url_query_values(url text, name text) is
  'API: Private. The values of every query parameter of a URL named `name`, in order, names and values decoded as a web server reads them (+ as a space, %XX; a parameter that is not UTF-8 once decoded is skipped). Empty when there is none.';
revoke all on function private.url_query_values(text, text) from public;

create function private.image_url_on_project_storage(url text)
returns boolean
language sql
stable
set search_path = pg_catalog, pg_temp
as $$
  select case when p.host is null then true
              else coalesce(u.host in (p.host, pg_catalog.regexp_replace(p.host, '^([a-z0-9-]+)[.]supabase[.]co$', '\1.storage.supabase.co')), false)
         end
    from (select pg_catalog.rtrim(pg_catalog.lower(pg_catalog.substring(url,
                   '^[A-Za-z][A-Za-z0-9+.-]*://(?:[^/?#@]*@)?([^/?#:]*)')), '.') as host) as u,
         (select nullif(pg_catalog.rtrim(pg_catalog.lower(pg_catalog.substring(private.secret('project_url'),
                   '^[A-Za-z][A-Za-z0-9+.-]*://(?:[^/?#@]*@)?([^/?#:]*)')), '.'), '') as host) as p
$$;
comment on function private.image_url_on_project_storage(url text) is
  'API: Private. Whether an image URL may point at this project''s Storage: its host is the host of the Vault secret project_url (or, for <ref>.supabase.co, the direct Storage host <ref>.storage.supabase.co), compared without letter case, port or a trailing dot. True for every host while project_url is missing or names no host; false for a URL without a host.';
revoke all on function private.image_url_on_project_storage(text) from public;

create or replace function private.image_url_unsigned_problem(url text)
returns text
language sql
stable
set search_path = pg_catalog, pg_temp
as $$
  select case
           when s.kind = 'public' and not b.public then
             pg_catalog.format('%s is a private bucket and the URL is not signed, so it cannot be downloaded: send a signed URL (createSignedUrl)', b.id)
           when s.kind in ('authenticated', '') then
             pg_catalog.format('the URL downloads from %s with the caller''s token, which the provider does not send: send a signed URL (createSignedUrl)', b.id)
           when s.kind = 'sign' and not exists (select from pg_catalog.unnest(private.url_query_values(url, 'token')) as t (token)
                                                 where t.token <> '') then
             'the URL is signed but has no token, so it cannot be downloaded: send the URL createSignedUrl returns, whole'
         end
    from (select coalesce(m[1], '') as kind, m[2] as bucket
            from pg_catalog.regexp_match(url,
                   '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*/storage/v1/(?:object|render/image)/(?:(public|authenticated|sign)/)?([^/?#]+)/') as m) as s
    join storage.buckets as b on b.id = s.bucket
   where private.image_url_on_project_storage(url)
$$;
comment on function private.image_url_unsigned_problem(url text) is
  'API: Private. Why a Storage URL of one of this project''s buckets (on its own host: private.image_url_on_project_storage) cannot be downloaded without credentials: a public URL of a private bucket, an authenticated or plain download URL (they need the caller''s token), or a signed URL without a token. Null for a signed URL with a token, a public URL of a public bucket, a bucket the project does not have, another host, and any other URL.';

create or replace function private.image_url_expiry_problem(url text, at timestamptz)
returns text
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $$
declare
  token text;
  payload text;
  claims jsonb;
  expires numeric;
begin
  if url is null
     or url !~ '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*/storage/v1/(?:object|render/image)/sign/[^?#]+[?]'
     or not private.image_url_on_project_storage(url) then
    return null;
  end if;
  -- Every token parameter, decoded as Storage reads it: which one it uses when there are
  -- several is not this rule's to guess, so an expired one among them refuses the URL.
  foreach token in array private.url_query_values(url, 'token') loop
    -- The JWT's payload (its middle part).
    payload := pg_catalog.substring(token, '^[A-Za-z0-9_-]+[.]([A-Za-z0-9_-]+)[.][A-Za-z0-9_-]*$');
    continue when payload is null or pg_catalog.length(payload) % 4 = 1;
    begin
      claims := pg_catalog.convert_from(
        pg_catalog.decode(pg_catalog.rpad(pg_catalog.translate(payload, '-_', '+/'),
                                          ((pg_catalog.length(payload) + 3) / 4) * 4, '='), 'base64'),
        'UTF8')::jsonb;
    exception when invalid_parameter_value or character_not_in_repertoire or invalid_text_representation then
      continue; -- not a JWT after all: not this rule's business
    end;
    continue when pg_catalog.jsonb_typeof(claims) is distinct from 'object'
               or pg_catalog.jsonb_typeof(claims -> 'exp') is distinct from 'number';
    expires := (claims ->> 'exp')::numeric;
    if expires <= extract(epoch from at) then
      return pg_catalog.format('the signed URL expired at %s: sign the upload again',
        pg_catalog.to_char(pg_catalog.to_timestamp(greatest(expires, 0)::double precision) at time zone 'UTC',
                           'YYYY-MM-DD"T"HH24:MI:SS"Z"'));
    end if;
  end loop;
  return null;
end
$$;
comment on function private.image_url_expiry_problem(url text, at timestamptz) is
  'API: Private. Why a signed Storage URL of this project (/storage/v1/object/sign/... or /storage/v1/render/image/sign/..., ?token=<JWT>, on its own host: private.image_url_on_project_storage) can no longer be fetched: the exp of one of its token parameters (decoded as Storage reads them) is not after `at`. Null for tokens still valid, ones that are not JWTs or have no numeric exp, another host, and any other URL.';

comment on function private.image_url_problem(text) is
  'API: Private. Why an image URL breaks the image URL policy (private.image_url_host_problem, then private.image_url_path_problem, then private.image_url_unsigned_problem: an unsigned URL of a bucket of this project''s Storage that needs credentials, then private.image_url_expiry_problem: a signed URL of this project''s Storage whose token has expired), or null when it is accepted.';
