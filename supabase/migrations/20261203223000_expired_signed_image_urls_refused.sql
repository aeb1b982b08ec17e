-- Why: the app hands start_generation a signed URL of its upload, and the provider downloads the
-- photo only when it runs the task. A signed URL whose token had already expired was accepted,
-- charged, sent to KIE, and came back failed ("The image could not be generated.", provider_failed,
-- which the registry calls worth retrying) with its refund. retry_generation replays the URL the
-- failed job stored, so retrying an image-to-image job after its signed URL expired (an hour
-- later, say) failed the same way every time: each retry a KIE task spent on a download that
-- could not work, and nothing told the app to sign the photo again.
--
-- The image URL policy now also reads the token of a signed Storage URL
-- (`/storage/v1/object/sign/...?token=<JWT>`, or `/storage/v1/render/image/sign/...` when it was
-- signed with a transformation: the JWT Storage signs with the URL's `exp` in seconds) and refuses one that has expired: KL013, the detail says when it expired and to sign
-- the upload again. The app then signs again and starts a new job (a retry cannot take a new URL).
-- Only an expired token is refused: how long a URL must outlive the start is the app's side of the
-- contract (the README: sign for longer than a job's deadline). A token that is not a JWT, has no
-- numeric exp, or sits on any other URL is not judged; the host and path rules are unchanged.

create function private.image_url_expiry_problem(url text, at timestamptz)
returns text
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $$
declare
  payload text;
  claims jsonb;
  expires numeric;
begin
  -- The JWT's payload (its middle part) from the token parameter of a signed Storage URL.
  payload := pg_catalog.substring(url,
    '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*/storage/v1/(?:object|render/image)/sign/[^?#]+[?](?:[^#]*&)?token=[A-Za-z0-9_-]+[.]([A-Za-z0-9_-]+)[.][A-Za-z0-9_-]*(?:[&#]|$)');
  if payload is null or pg_catalog.length(payload) % 4 = 1 then
    return null;
  end if;
  begin
    claims := pg_catalog.convert_from(
      pg_catalog.decode(pg_catalog.rpad(pg_catalog.translate(payload, '-_', '+/'),
                                        ((pg_catalog.length(payload) + 3) / 4) * 4, '='), 'base64'),
      'UTF8')::jsonb;
  exception when invalid_parameter_value or character_not_in_repertoire or invalid_text_representation then
    return null; -- not a JWT after all: not this rule's business
  end;
  if pg_catalog.jsonb_typeof(claims) is distinct from 'object'
     or pg_catalog.jsonb_typeof(claims -> 'exp') is distinct from 'number' then
    return null;
  end if;
  expires := (claims ->> 'exp')::numeric;
  if expires > extract(epoch from at) then
    return null;
  end if;
  return pg_catalog.format('the signed URL expired at %s: sign the upload again',
    pg_catalog.to_char(pg_catalog.to_timestamp(greatest(expires, 0)::double precision) at time zone 'UTC',
                       'YYYY-MM-DD"T"HH24:MI:SS"Z"'));
end
$$;
comment on function private.image_url_expiry_problem(url text, at timestamptz) is
  'API: Private. Why a signed Storage URL (/storage/v1/object/sign/... or /storage/v1/render/image/sign/..., ?token=<JWT>) can no longer be fetched: its token''s exp is not after `at`. Null for a token still valid, one that is not a JWT or has no numeric exp, and any other URL.';
revoke all on function private.image_url_expiry_problem(text, timestamptz) from public;

-- As in 20261201130200, with the expiry read last (a URL the host or path rules refuse is refused
-- for that, whatever its token says).
create or replace function private.image_url_problem(url text)
returns text
language sql
stable
set search_path = pg_catalog, pg_temp
as $$
  select coalesce(private.image_url_host_problem(url), private.image_url_path_problem(url),
                  private.image_url_expiry_problem(url, pg_catalog.now()))
$$;
comment on function private.image_url_problem(text) is
  'API: Private. Why an image URL breaks the image URL policy (private.image_url_host_problem, then private.image_url_path_problem, then private.image_url_expiry_problem: a signed Storage URL whose token has expired), or null when it is accepted.';
