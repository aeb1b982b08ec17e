-- Why: only a hash of each callback token is stored (private.requests.callback_token_hash), but
-- a reply KIE sends back may echo the createTask request: recordInfo's data.param holds it, with
-- the callBackUrl and its token=. When such a reply has no message of its own, its excerpt became
-- the request's error (private.requests.error, job_pipeline.last_error), and the token with it,
-- readable by anyone who reads the operator's logs, for as long as the attempt is open. Every log
-- excerpt goes through log_excerpt, so it now writes token=[redacted] for the value, whatever the
-- excerpt comes from. Otherwise as in 20261130192000.

create or replace function private.log_excerpt(content text, max_length integer default 300)
returns text
language plpgsql immutable
set search_path = pg_catalog, pg_temp
as $$
begin
  return left(btrim(regexp_replace(
           regexp_replace(
             regexp_replace(left(content, greatest(max_length, 0) * 4 + 16),
                            '[\u0001-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]', ' ', 'g'),
             -- The value as a URL carries it (token=…), plain or percent-encoded (token%3D…).
             '(token(=|%3d))[a-z0-9._~%-]+', '\1[redacted]', 'gi'),
           '\s+', ' ', 'g')), max_length);
exception when others then
  return '(unreadable bytes)';
end
$$;
comment on function private.log_excerpt(text, integer) is
  'API: Private. A one-line excerpt for logs and last_error: control, bidi and invisible format characters removed, white space folded, callback tokens (token=…) redacted, at most max_length characters; never throws.';
