-- Why: KIE downloads an image-to-image job's photo with no credentials. The image URL policy
-- judged the host and the path's spelling only, so a Storage URL of this project's private
-- user-uploads bucket that is not signed was accepted and charged: the URL supabase-js's
-- getPublicUrl builds (/storage/v1/object/public/user-uploads/...; the bucket is private, so
-- Storage refuses it), or the authenticated and plain download URLs (/object/authenticated/...,
-- /object/<bucket>/...), which need the caller's token. The task then failed at KIE with "The
-- image could not be generated." (provider_failed) and its refund, and every retry the same:
-- nothing told the app that it had sent the wrong kind of URL.
--
-- The policy now refuses those (KL013, the detail names the bucket and says to send a signed URL):
-- a Storage object URL (/storage/v1/object/... or /storage/v1/render/image/...) whose bucket
-- exists in this project and is private, unless it is signed; and an authenticated or plain
-- download URL of any bucket here. A signed URL (judged by its expiry, 20261203223000), a public
-- URL of a public bucket, and a URL naming a bucket this project does not have are not judged.

create function private.image_url_unsigned_problem(url text)
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
         end
    from (select coalesce(m[1], '') as kind, m[2] as bucket
            from pg_catalog.regexp_match(url,
                   '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*/storage/v1/(?:object|render/image)/(?:(public|authenticated|sign)/)?([^/?#]+)/') as m) as s
    join storage.buckets as b on b.id = s.bucket
$$;
comment on function private.image_url_unsigned_problem(url text) is
  'API: Private. Why a Storage URL of one of this project''s buckets cannot be downloaded without credentials: a public URL of a private bucket, or an authenticated or plain download URL (they need the caller''s token). Null for a signed URL, a public URL of a public bucket, a bucket the project does not have, and any other URL.';
revoke all on function private.image_url_unsigned_problem(text) from public;

-- As in 20261203223000, with the unsigned-URL rule before the expiry of a signed one.
create or replace function private.image_url_problem(url text)
returns text
language sql
stable
set search_path = pg_catalog, pg_temp
as $$
  select coalesce(private.image_url_host_problem(url), private.image_url_path_problem(url),
                  private.image_url_unsigned_problem(url), private.image_url_expiry_problem(url, pg_catalog.now()))
$$;
comment on function private.image_url_problem(text) is
  'API: Private. Why an image URL breaks the image URL policy (private.image_url_host_problem, then private.image_url_path_problem, then private.image_url_unsigned_problem: an unsigned URL of a private bucket here, then private.image_url_expiry_problem: a signed Storage URL whose token has expired), or null when it is accepted.';
