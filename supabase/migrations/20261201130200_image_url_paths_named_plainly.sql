-- Why: the Storage purge of expired uploads (20261201130000) compares object names with the
-- names in a job's image URLs, but a fetcher resolves "." and ".." segments (also written %2e)
-- and may decode a percent-encoded letter. A URL such as .../user-uploads/<uid>/./old.jpg
-- reaches old.jpg while naming another object, so it slipped past both the refusal of an upload
-- being deleted and the in-use check. The image URL policy now also refuses a path that does not
-- name its object plainly: a "." or ".." segment, an empty segment (//), or a percent-encoded
-- letter, digit, "-", ".", "_" or "~" (RFC 3986: producers should not encode these; Storage's
-- URLs do not). Only the path is read; the query and fragment are left alone.
--
-- The existing checks (syntax, scheme, port, host) keep their function under a name that says
-- what it checks; private.image_url_problem, which start_generation calls, is now both.
alter function private.image_url_problem(text) rename to image_url_host_problem;
comment on function private.image_url_host_problem(text) is
  'API: Private. Why an image URL breaks the syntax, scheme, port or host rules of the image URL policy (settings images.*), or null.';

create function private.image_url_path_problem(url text)
returns text
language sql immutable strict
set search_path = pg_catalog, pg_temp
as $$
  select case
           when p.path ~* '(^|/)(\.|%2e){1,2}(/|$)' then 'the URL path has a "." or ".." segment'
           when p.path like '%//%' then 'the URL path has an empty segment (//)'
           when p.path ~* '%(2[de]|3[0-9]|4[1-9a-f]|5[0-9af]|6[1-9a-f]|7[0-9ae])'
             then 'the URL path percent-encodes a letter, a digit or one of - . _ ~ (they need no encoding)'
         end
    from (select pg_catalog.substring(url, '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*([^?#]*)') as path) p
$$;
comment on function private.image_url_path_problem(text) is
  'API: Private. Why the path of an absolute image URL does not name its object plainly (a "." or ".." segment, also %2e; an empty segment; a percent-encoded unreserved character), or null.';

create function private.image_url_problem(url text)
returns text
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select coalesce(private.image_url_host_problem(url), private.image_url_path_problem(url))
$$;
comment on function private.image_url_problem(text) is
  'API: Private. Why an image URL breaks the image URL policy (private.image_url_host_problem, then private.image_url_path_problem), or null when it is accepted.';

select private.pin_search_paths();
