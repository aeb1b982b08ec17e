-- kiln pg_net look-alike: from 0.20.0 to 0.20.4 (pg_net itself changed no SQL). A local database
-- created with the 0.20.0 look-alike gets the worker's plumbing and the URL errors of 0.20.4:
--   alter extension pg_net update;

\echo Use "ALTER EXTENSION pg_net UPDATE" to load this file. \quit

-- Appends already encoded `key=value` strings to the query of `url` ('&' between them), the way
-- pg_net 0.20.4 does with libcurl 7.88's URL API (curl_url_set, then CURLU_APPENDQUERY for each
-- param): the scheme is lower-cased, one to three slashes after it become two, an empty path
-- becomes '/', dot segments are removed, an empty port, query or fragment is dropped, a port loses
-- its leading zeros, a fragment stays at the end, and the %XX escapes of each appended param are
-- lower-cased (libcurl does so for any part it is given unencoded).
-- An invalid URL is an XX000 error whose message is pg_net's: it passes libcurl's URL error code
-- to curl_easy_strerror(), so the text is the easy interface's text for that number and does not
-- describe the cause (a space in the query: "Failed to open/read local data from
-- file/application"). The URL is not in the message.
-- API: Private
create or replace function net._encode_url_with_params_array(url text, params_array text[])
    -- url encoded string
    returns text
    language plpgsql
    immutable
as $$
declare
    -- Bytes libcurl refuses in any part of a URL (its junkscan): controls and the space.
    junk constant text := '[[:cntrl:] ]';
    parts text[];
    scheme text;
    userinfo text;
    hostport text;
    host text;
    port text;
    path text;
    query text;
    fragment text;
    code int;
    segment text;
    kept text[] := '{}';
    param text;
begin
    if url is null or params_array is null then
        return null;
    end if;

    -- scheme ":" slashes authority path ["?" query] ["#" fragment]
    parts := regexp_match(url, '^([A-Za-z][A-Za-z0-9+.-]*):(/*)([^/?#]*)([^?#]*)(\?[^#]*)?(#.*)?$');
    scheme := lower(parts[1]);
    userinfo := substring(parts[3] from '^([^@]*)@');
    hostport := regexp_replace(parts[3], '^[^@]*@', '');
    if hostport like '[%' then
        host := substring(hostport from '^(\[[^]]*\])');
        port := case when host is null then null else substr(hostport, length(host) + 1) end;
    else
        host := split_part(hostport, ':', 1);
        port := substr(hostport, length(host) + 1);
    end if;
    path := parts[4];
    query := substr(parts[5], 2);
    fragment := substr(parts[6], 2);

    -- The CURLUcode libcurl 7.88 returns, in the order its parser checks.
    code := case
        when parts is null then 27                                   -- CURLUE_BAD_SCHEME
        when scheme not in ('dict', 'file', 'ftp', 'ftps', 'gopher', 'gophers', 'http', 'https', 'imap',
                            'imaps', 'ldap', 'ldaps', 'mqtt', 'pop3', 'pop3s', 'rtmp', 'rtsp', 'scp', 'sftp',
                            'smb', 'smbs', 'smtp', 'smtps', 'telnet', 'tftp')
            then 5                                                   -- CURLUE_UNSUPPORTED_SCHEME
        when length(parts[2]) not between 1 and 3 then 28            -- CURLUE_BAD_SLASHES
        when fragment ~ junk then 20                                 -- CURLUE_BAD_FRAGMENT
        when query ~ junk then 26                                    -- CURLUE_BAD_QUERY
        when path ~ junk then 25                                     -- CURLUE_BAD_PATH
        when userinfo ~ junk then 29                                 -- CURLUE_BAD_USER
        when host is null then 22                                    -- CURLUE_BAD_IPV6
        when port <> '' and (port !~ '^:[0-9]*$' or coalesce(nullif(ltrim(substr(port, 2), '0'), '')::numeric, 0) > 65535)
            then 4                                                   -- CURLUE_BAD_PORT_NUMBER
        when host = '' then 14                                       -- CURLUE_NO_HOST
        when host ~ junk then 21                                     -- CURLUE_BAD_HOSTNAME
    end;
    if code is not null then
        raise exception using
            errcode = 'XX000',
            -- curl_easy_strerror() of the same numbers
            message = case code
                when 4 then 'A requested feature, protocol or option was not found built-in in this libcurl due to a build-time decision.'
                when 5 then 'Couldn''t resolve proxy name'
                when 14 then 'FTP: unknown 227 response format'
                when 21 then 'Quote command returned error'
                when 22 then 'HTTP response code said error'
                when 25 then 'Upload failed (at start/before it took off)'
                when 26 then 'Failed to open/read local data from file/application'
                when 27 then 'Out of memory'
                when 28 then 'Timeout was reached'
                else 'Unknown error'
            end;
    end if;

    -- RFC 3986 remove_dot_segments
    foreach segment in array string_to_array(substr(path, 2), '/') loop
        if segment = '..' then
            kept := kept[1:cardinality(kept) - 1];
        elsif segment <> '.' then
            kept := kept || segment;
        end if;
    end loop;
    path := '/' || array_to_string(kept, '/');
    if path <> '/' and (parts[4] ~ '/\.{1,2}$') then
        path := path || '/';
    end if;

    foreach param in array params_array loop
        continue when param is null;
        param := coalesce((
            select string_agg(coalesce('%' || lower(m[1]), m[2]), '' order by n)
              from regexp_matches(param, '%([0-9A-Fa-f]{2})|(%|[^%]+)', 'g') with ordinality as r(m, n)
        ), '');
        query := case
            when coalesce(query, '') = '' then param
            when query like '%&' then query || param
            else query || '&' || param
        end;
    end loop;

    return scheme || '://' || coalesce(userinfo || '@', '') || host
        || case when port in ('', ':') then '' else ':' || substr(port, 2)::int end
        || path
        || coalesce('?' || nullif(query, ''), '')
        || coalesce('#' || nullif(fragment, ''), '');
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
