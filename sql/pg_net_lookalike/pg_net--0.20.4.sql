-- kiln: development look-alike of the pg_net 0.20.4 extension (supabase/pg_net).
--
-- Local development and tests only: hosted Supabase ships the real pg_net, and this file is never
-- a migration. It reproduces the public SQL API of pg_net 0.20 (no SQL changed from 0.20.0 to
-- 0.20.4: schema `net`, the same functions with the same signatures and defaults, the same
-- tables, types and grants) so that `create extension if not exists pg_net with schema
-- extensions;` and every caller work unchanged on a machine without the real package.
--
-- Differences from the real extension, all internal:
--   * no C code: the URL helpers are PL/pgSQL, and net.wake() is a NOTIFY on the channel
--     `pg_net_lookalike` instead of setting the background worker's latch;
--   * no background worker: scripts/dev-stack/pg-net-worker.ts drains net.http_request_queue and
--     writes net._http_response. It connects with application_name `pg_net_lookalike_worker`,
--     which is how net.check_worker_is_up() and net.wait_until_running() find it;
--   * one extra schema, `net_lookalike`, holds the worker's plumbing (not pg_net's API).
--
-- As with pg_net, the request functions only insert into the queue: a request made in a
-- transaction that rolls back never exists, and the worker only sees committed requests.

\echo Use "CREATE EXTENSION pg_net" to load this file. \quit

create schema if not exists net;

create domain net.http_method as text
check (
    value ilike 'get'
    or value ilike 'post'
    or value ilike 'delete'
);

-- Pending requests; the worker deletes them when it sends them.
-- API: Private
create unlogged table net.http_request_queue(
    id bigserial,
    method net.http_method not null,
    url text not null,
    headers jsonb,
    body bytea,
    timeout_milliseconds int not null
);

-- One row per finished request, with the request's id.
-- API: Private
create unlogged table net._http_response(
    id bigint,
    status_code integer,
    content_type text,
    headers jsonb,
    content text,
    timed_out bool,
    error_msg text,
    created timestamptz not null default now()
);

create index on net._http_response (created);

-- The look-alike's "background worker" is a client session of the Node worker.
create or replace function net.check_worker_is_up() returns void as $$
begin
    if not exists (
        select 1 from pg_stat_activity where application_name = 'pg_net_lookalike_worker'
    ) then
        raise exception using
            message = 'the pg_net background worker is not up',
            detail  = 'the pg_net look-alike has no background worker: start scripts/dev-stack/pg-net-worker.ts',
            hint    = 'the local stack starts it; tests start it with startPgNetWorker()';
    end if;
end
$$ language plpgsql;
comment on function net.check_worker_is_up() is 'raises an exception if the pg_net background worker is not up, otherwise it doesn''t return anything';

-- Blocks until the response of a request is stored.
-- API: Private
create or replace function net._await_response(
    request_id bigint
)
    returns bool
    language plpgsql
as $$
begin
    loop
        exit when exists (select 1 from net._http_response r where r.id = request_id);
        perform pg_sleep(0.05);
    end loop;
    return true;
end;
$$;

-- Percent-encodes every byte of the UTF-8 form of `string` except the unreserved characters
-- (A-Z a-z 0-9 - . _ ~), with upper-case hex digits, like libcurl's curl_escape().
-- API: Private
create or replace function net._urlencode_string(string varchar)
    -- url encoded string
    returns text
    language plpgsql
    immutable
as $$
declare
    raw bytea;
    encoded text := '';
    b int;
begin
    if string is null then
        return null;
    end if;
    raw := convert_to(string, 'UTF8');
    for i in 0 .. length(raw) - 1 loop
        b := get_byte(raw, i);
        if b between 48 and 57 or b between 65 and 90 or b between 97 and 122 or b in (45, 46, 95, 126) then
            encoded := encoded || chr(b);
        else
            encoded := encoded || '%' || upper(lpad(to_hex(b), 2, '0'));
        end if;
    end loop;
    return encoded;
end;
$$;

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

-- The real extension restarts its background worker. Here: wakes the Node worker and reports
-- whether one is connected.
create or replace function net.worker_restart()
    returns bool
    language plpgsql
as $$
begin
    perform pg_notify('pg_net_lookalike', 'restart');
    return exists (select 1 from pg_stat_activity where application_name = 'pg_net_lookalike_worker');
end;
$$;

create or replace function net.wait_until_running()
    returns void
    language plpgsql
as $$
begin
    while not exists (
        select 1 from pg_stat_activity where application_name = 'pg_net_lookalike_worker'
    ) loop
        perform pg_sleep(0.05);
    end loop;
end;
$$;
comment on function net.wait_until_running() is 'waits until the worker is running';

-- Tells the worker that requests are queued. NOTIFY is delivered on commit and dropped on
-- rollback, which matches when queued requests become visible.
create or replace function net.wake()
    returns void
    language plpgsql
as $$
begin
    perform pg_notify('pg_net_lookalike', '');
end;
$$;

-- Interface to make an async request
-- API: Public
create or replace function net.http_get(
    -- url for the request
    url text,
    -- key/value pairs to be url encoded and appended to the `url`
    params jsonb default '{}'::jsonb,
    -- key/values to be included in request headers
    headers jsonb default '{}'::jsonb,
    -- the maximum number of milliseconds the request may take before being cancelled
    timeout_milliseconds int default 5000
)
    -- request_id reference
    returns bigint
    language plpgsql
as $$
declare
    encoded_params text[];
    new_id bigint;
begin
    select coalesce(array_agg(net._urlencode_string(p.key) || '=' || net._urlencode_string(p.value)), '{}')
      into encoded_params
      from jsonb_each_text(params) as p;

    insert into net.http_request_queue (method, url, headers, timeout_milliseconds)
    values ('GET', net._encode_url_with_params_array(url, encoded_params), headers, timeout_milliseconds)
    returning id into new_id;

    perform net.wake();
    return new_id;
end
$$;

-- Interface to make an async request
-- API: Public
create or replace function net.http_post(
    -- url for the request
    url text,
    -- body of the POST request
    body jsonb default '{}'::jsonb,
    -- key/value pairs to be url encoded and appended to the `url`
    params jsonb default '{}'::jsonb,
    -- key/values to be included in request headers
    headers jsonb default '{"Content-Type": "application/json"}'::jsonb,
    -- the maximum number of milliseconds the request may take before being cancelled
    timeout_milliseconds int default 5000
)
    -- request_id reference
    returns bigint
    language plpgsql
as $$
declare
    encoded_params text[];
    given_content_type text;
    new_id bigint;
begin
    -- The body is sent as JSON: a Content-Type header, when given (any letter case), must say so;
    -- when missing it is added.
    select h.value
      into given_content_type
      from jsonb_each_text(coalesce(headers, '{}'::jsonb)) as h
     where lower(h.key) = 'content-type'
     limit 1;

    if given_content_type is null then
        headers := headers || '{"Content-Type": "application/json"}'::jsonb;
    elsif given_content_type <> 'application/json' then
        raise exception 'Content-Type header must be "application/json"';
    end if;

    select coalesce(array_agg(net._urlencode_string(p.key) || '=' || net._urlencode_string(p.value)), '{}')
      into encoded_params
      from jsonb_each_text(params) as p;

    insert into net.http_request_queue (method, url, headers, body, timeout_milliseconds)
    values (
        'POST',
        net._encode_url_with_params_array(url, encoded_params),
        headers,
        convert_to(body::text, 'UTF8'),
        timeout_milliseconds
    )
    returning id into new_id;

    perform net.wake();
    return new_id;
end
$$;

-- Interface to make an async request
-- API: Public
create or replace function net.http_delete(
    -- url for the request
    url text,
    -- key/value pairs to be url encoded and appended to the `url`
    params jsonb default '{}'::jsonb,
    -- key/values to be included in request headers
    headers jsonb default '{}'::jsonb,
    -- the maximum number of milliseconds the request may take before being cancelled
    timeout_milliseconds int default 5000,
    -- optional body of the request
    body jsonb default null
)
    -- request_id reference
    returns bigint
    language plpgsql
as $$
declare
    encoded_params text[];
    new_id bigint;
begin
    select coalesce(array_agg(net._urlencode_string(p.key) || '=' || net._urlencode_string(p.value)), '{}')
      into encoded_params
      from jsonb_each_text(params) as p;

    insert into net.http_request_queue (method, url, headers, body, timeout_milliseconds)
    values (
        'DELETE',
        net._encode_url_with_params_array(url, encoded_params),
        headers,
        convert_to(body::text, 'UTF8'),
        timeout_milliseconds
    )
    returning id into new_id;

    perform net.wake();
    return new_id;
end
$$;

-- Lifecycle states of a request (all protocols)
-- API: Public
create type net.request_status as enum ('PENDING', 'SUCCESS', 'ERROR');

-- A response from an HTTP server
-- API: Public
create type net.http_response as (
    status_code integer,
    headers jsonb,
    body text
);

-- State wrapper around responses
-- API: Public
create type net.http_response_result as (
    status net.request_status,
    message text,
    response net.http_response
);

-- Collect respones of an http request
-- API: Private
create or replace function net._http_collect_response(
    -- request_id reference
    request_id bigint,
    -- when `true`, return immediately. when `false` wait for the request to complete before returning
    async bool default true
)
    -- http response composite wrapped in a result type
    returns net.http_response_result
    language plpgsql
as $$
declare
    found_response net._http_response;
begin
    if not async then
        perform net._await_response(request_id);
    end if;

    select * into found_response from net._http_response r where r.id = request_id;

    -- Not finished, unknown, or failed without an HTTP response.
    if found_response is null or found_response.error_msg is not null then
        return row(
            'ERROR',
            coalesce(found_response.error_msg, 'request matching request_id not found'),
            null
        )::net.http_response_result;
    end if;

    return row(
        'SUCCESS',
        'ok',
        row(found_response.status_code, found_response.headers, found_response.content)::net.http_response
    )::net.http_response_result;
end;
$$;

-- Deprecated in pg_net. In the real 0.20.0 the function body runs a SELECT without a destination,
-- so every call raises the notice and then fails; the look-alike reproduces that on purpose, so
-- that code relying on it fails locally as it would on the platform. Use
-- net._http_collect_response or read net._http_response.
create or replace function net.http_collect_response(
    -- request_id reference
    request_id bigint,
    -- when `true`, return immediately. when `false` wait for the request to complete before returning
    async bool default true
)
    -- http response composite wrapped in a result type
    returns net.http_response_result
    language plpgsql
as $$
begin
    raise notice 'The net.http_collect_response function is deprecated.';
    raise exception using
        errcode = '42601',
        message = 'query has no destination for result data',
        hint = 'If you want to discard the results of a SELECT, use PERFORM instead.';
end;
$$;

grant usage on schema net to PUBLIC;
grant all on all sequences in schema net to PUBLIC;
grant all on all tables in schema net to PUBLIC;

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
