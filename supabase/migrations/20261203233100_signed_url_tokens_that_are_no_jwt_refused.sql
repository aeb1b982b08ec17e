-- Why: Storage's signed-URL token is always a JWT (header.payload.signature, each part base64url,
-- header and payload JSON objects), and Storage answers anything else with InvalidJWT. The image
-- URL policy read a signed URL's tokens only for their exp (20261203223000) and skipped a token
-- that was no JWT at all, so a signed URL of this project's Storage whose token was cut short,
-- mangled or made up (?token=t, ?token=not-a-jwt, ?token=a.%%.b) was accepted and charged, failed
-- at KIE and was refunded, and every retry the same.
--
-- A new rule, private.image_url_token_problem, refuses such a URL (KL013, the detail says the
-- token is not a JWT and to send the URL createSignedUrl returns, whole), on the same URLs the
-- expiry rule reads: signed URLs of this project's Storage, every token parameter as Storage
-- decodes the query (one that is no JWT among several refuses the URL, as an expired one does).
-- It runs after the unsigned rule, which already refuses a signed URL with no token at all.
--
-- Where the line is, and why the expiry rule keeps skipping what it cannot read (20261203228000):
-- this rule refuses what no JWT verifier accepts, so what Storage refuses for certain: not three
-- base64url parts, or a header or payload that is not a JSON object in UTF-8 (RFC 7519). It
-- checks the JSON with the json type, which reads the text as JSON is written. A payload that is
-- such an object but that jsonb cannot hold (a \u0000 escape, a number beyond numeric) is a JWT
-- all the same, which Storage may well accept: this rule lets it through, and the expiry rule,
-- which reads claims through jsonb, still skips it rather than raise a raw 22xxx error. So no
-- token is refused for being unreadable by Postgres alone, and no error of reading one escapes.
-- The signature is still Storage's alone to check.

create function private.is_jwt(token text)
returns boolean
language plpgsql
immutable
strict
set search_path = pg_catalog, pg_temp
as $$
declare
  parts text[];
  part text;
  content json;
begin
  -- header.payload.signature: base64url (no padding), none empty, none of a length base64 cannot have.
  parts := pg_catalog.regexp_match(token, '^([A-Za-z0-9_-]+)[.]([A-Za-z0-9_-]+)[.]([A-Za-z0-9_-]+)$');
  if parts is null or pg_catalog.length(parts[1]) % 4 = 1 or pg_catalog.length(parts[2]) % 4 = 1
     or pg_catalog.length(parts[3]) % 4 = 1 then
    return false;
  end if;
  -- The header and the payload: each a JSON object in UTF-8.
  foreach part in array parts[1:2] loop
    begin
      content := pg_catalog.convert_from(
        pg_catalog.decode(pg_catalog.rpad(pg_catalog.translate(part, '-_', '+/'),
                                          ((pg_catalog.length(part) + 3) / 4) * 4, '='), 'base64'),
        'UTF8')::json;
    exception when data_exception then
      return false; -- not UTF-8, or not JSON
    end;
    if pg_catalog.json_typeof(content) is distinct from 'object' then
      return false;
    end if;
  end loop;
  return true;
end
$$;
comment on function private.is_jwt(token text) is
  'API: Private. Whether a token has the form of a JWT: three base64url parts joined by dots (header.payload.signature, none empty), the header and the payload each a JSON object in UTF-8 (read with the json type, so JSON that jsonb cannot hold, such as a \u0000 escape or a number beyond numeric, still counts). The signature is not checked. Null for null.';
revoke all on function private.is_jwt(text) from public;

create function private.image_url_token_problem(url text)
returns text
language sql
stable
set search_path = pg_catalog, pg_temp
as $$
  select case
           when exists (select from pg_catalog.unnest(private.url_query_values(url, 'token')) as t (token)
                         where not private.is_jwt(t.token)) then
             'the signed URL''s token is not a JWT (header.payload.signature, base64url), so Storage refuses it: send the URL createSignedUrl returns, whole'
         end
   where url ~ '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*/storage/v1/(?:object|render/image)/sign/[^?#]+[?]'
     and private.image_url_on_project_storage(url)
$$;
comment on function private.image_url_token_problem(url text) is
  'API: Private. Why a signed Storage URL of this project (/storage/v1/object/sign/... or /storage/v1/render/image/sign/..., on its own host: private.image_url_on_project_storage) cannot be fetched because one of its token parameters (decoded as Storage reads them) is not a JWT (private.is_jwt), which Storage refuses. Null when every token has the form of a JWT (valid or not), another host, and any other URL.';
revoke all on function private.image_url_token_problem(text) from public;

-- As in 20261203223200 (comment as in 20261203227000), with the token rule after the unsigned
-- rule (a signed URL without any token is refused there) and before the expiry rule.
create or replace function private.image_url_problem(url text)
returns text
language sql
stable
set search_path = pg_catalog, pg_temp
as $$
  select coalesce(private.image_url_host_problem(url), private.image_url_path_problem(url),
                  private.image_url_unsigned_problem(url), private.image_url_token_problem(url),
                  private.image_url_expiry_problem(url, pg_catalog.now()))
$$;
comment on function private.image_url_problem(text) is
  'API: Private. Why an image URL breaks the image URL policy (private.image_url_host_problem, then private.image_url_path_problem, then private.image_url_unsigned_problem: an unsigned URL of a bucket of this project''s Storage that needs credentials, then private.image_url_token_problem: a signed URL of this project''s Storage whose token is not a JWT, then private.image_url_expiry_problem: a signed URL of this project''s Storage whose token has expired), or null when it is accepted.';

comment on function private.image_url_expiry_problem(url text, at timestamptz) is
  'API: Private. Why a signed Storage URL of this project (/storage/v1/object/sign/... or /storage/v1/render/image/sign/..., ?token=<JWT>, on its own host: private.image_url_on_project_storage) can no longer be fetched: the exp of one of its token parameters (decoded as Storage reads them) is not after `at`. Null for tokens still valid, ones it cannot read (not JWTs, which private.image_url_token_problem refuses before it; or a payload jsonb cannot hold: a \u0000 escape, a number beyond numeric) or without a numeric exp, another host, and any other URL.';
