-- Why: private.image_url_expiry_problem reads the payload of every token parameter of a signed
-- URL of this project, and that payload is whatever the app sends. It skipped a payload that was
-- not base64, not UTF-8 or not JSON, but JSON that Postgres cannot hold raised out of the rule: a
-- \u0000 escape (jsonb refuses it: 22P05) or a number beyond numeric's range such as an exp of
-- 1e999999 (22003). A start or retry naming such a URL failed with that raw SQL error instead of
-- an answer of the image URL policy.
--
-- Whatever error reading the payload raises is a data exception (class 22), and whichever it is,
-- the token is not a JWT this rule can read: it is skipped like any other (the rule never stood for
-- the signature, which only Storage checks). Another token of the URL that has expired still
-- refuses it.

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
    exception when data_exception then
      -- Not base64, not UTF-8, not JSON, or JSON Postgres cannot hold (a \u0000 escape, a number
      -- beyond numeric): not a JWT this rule reads, whichever.
      continue;
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
  'API: Private. Why a signed Storage URL of this project (/storage/v1/object/sign/... or /storage/v1/render/image/sign/..., ?token=<JWT>, on its own host: private.image_url_on_project_storage) can no longer be fetched: the exp of one of its token parameters (decoded as Storage reads them) is not after `at`. Null for tokens still valid, ones that are not JWTs it can read (a payload that is not base64, UTF-8 or JSON jsonb holds: no \u0000 escape, numbers within numeric) or have no numeric exp, another host, and any other URL.';
