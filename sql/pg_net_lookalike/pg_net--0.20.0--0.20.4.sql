-- kiln pg_net look-alike: from 0.20.0 to 0.20.4 (pg_net itself changed no SQL). A local database
-- created with the 0.20.0 look-alike gets the worker's plumbing and the URL errors of 0.20.4:
--   alter extension pg_net update;

\echo Use "ALTER EXTENSION pg_net UPDATE" to load this file. \quit

-- Appends already encoded `key=value` strings to the query of `url` ('&' between them), the way
-- pg_net does with libcurl's URL API: an empty path becomes '/', the scheme is lower-cased, a
-- fragment stays at the end. An invalid URL is an error whose message holds the whole URL, as
-- pg_net's `invalid URL "<url>": <libcurl reason>` does: never put a secret in a URL.
-- API: Private
create or replace function net._encode_url_with_params_array(url text, params_array text[])
    -- url encoded string
    returns text
    language plpgsql
    immutable
as $$
declare
    parts text[];
    scheme text;
    reason text;
    path text;
    query text;
    param text;
begin
    if url is null or params_array is null then
        return null;
    end if;

    -- scheme "://" authority path ["?" query] ["#" fragment]
    parts := regexp_match(url, '^([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)([^?#]*)(\?[^#]*)?(#.*)?$');
    scheme := lower(substring(url from '^([A-Za-z][A-Za-z0-9+.-]*):'));
    reason := case
        -- the curl_url_strerror() texts of libcurl 7.88
        when url ~ '[[:space:][:cntrl:]]' then 'Malformed input to a URL function'
        when scheme is null then 'Bad scheme'
        when scheme not in ('http', 'https', 'ftp', 'ftps', 'file', 'dict', 'gopher', 'gophers', 'imap',
                            'imaps', 'ldap', 'ldaps', 'mqtt', 'pop3', 'pop3s', 'rtsp', 'scp', 'sftp', 'smb',
                            'smbs', 'smtp', 'smtps', 'telnet', 'tftp', 'ws', 'wss')
            then 'Unsupported URL scheme'
        when parts is null or regexp_replace(parts[2], '^.*@|:[0-9]*$', '', 'g') = '' then 'No host part in the URL'
        when parts[2] ~ ':' and parts[2] !~ '^(.*@)?(\[[^]]*\]|[^:\[]*)(:[0-9]{0,5})?$'
            then 'Port number was not a decimal number between 0 and 65535'
        when coalesce(substring(parts[2] from ':([0-9]{1,5})$')::int, 0) > 65535
            then 'Port number was not a decimal number between 0 and 65535'
    end;
    if reason is not null then
        raise exception using
            errcode = 'XX000',
            message = format('invalid URL "%s": %s', url, reason);
    end if;

    path := case when parts[3] = '' then '/' else parts[3] end;
    query := substr(parts[4], 2);

    foreach param in array params_array loop
        continue when param is null;
        query := case when coalesce(query, '') = '' then param else query || '&' || param end;
    end loop;

    return lower(parts[1]) || '://' || parts[2] || path
        || coalesce('?' || query, '')
        || coalesce(parts[5], '');
end;
$$;

-- The worker's plumbing, not part of pg_net's API. The real worker stores a response body as the
-- raw bytes the server sent (a C string, not checked against the database encoding), so a body
-- that is not valid UTF-8 is stored as such and fails later, where it is read (convert_to, and
-- text functions on it, raise 22021). A client session cannot send such text: every text value
-- it sends is checked. `unchecked_text` reinterprets bytes as text without that check
-- (bytea's substring from `start`, declared as returning text), so the worker can store what
-- the real one stores.
create schema net_lookalike;
comment on schema net_lookalike is
    'kiln pg_net look-alike: plumbing of scripts/dev-stack/pg-net-worker.ts; not part of pg_net''s API';

create function net_lookalike.unchecked_text(bytes bytea, start integer)
    returns text
    language internal
    immutable
    strict
as 'bytea_substr_no_len';
comment on function net_lookalike.unchecked_text(bytea, integer) is
    'The bytes from position start on, as text, without the encoding check: how the pg_net look-alike worker stores response bodies and headers byte for byte, as the real worker does.';
revoke all on function net_lookalike.unchecked_text(bytea, integer) from public;

-- A crash (and only a crash) empties unlogged tables, as it empties pg_net's queue and responses:
-- the worker keeps one row here, and a batch interrupted by a database restart is stored only if
-- the row is still there (after a crash, request ids and even transaction ids start again, so a
-- new request could look like the interrupted one).
create unlogged table net_lookalike.no_crash_since (
    written timestamptz not null default now()
);
comment on table net_lookalike.no_crash_since is
    'kiln pg_net look-alike: one row written by the worker; gone after a crash (unlogged), kept by a clean restart.';
revoke all on net_lookalike.no_crash_since from public;
