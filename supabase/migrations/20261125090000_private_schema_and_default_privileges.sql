-- Why: the Data API exposes `public` to every client, and Supabase's defaults grant the API roles
-- everything created there (and Postgres grants EXECUTE on every new function to PUBLIC). We
-- start from "deny": internals go to a `private` schema no API role can reach, and anything the
-- app may use in `public` is granted explicitly, object by object, in the migration that adds it.

create schema if not exists private;
comment on schema private is
  'API: Private. Internal tables and functions (state transitions, ticks, settings); never exposed to the Data API.';
revoke all on schema private from public;

-- New functions (in any schema, created by the migration owner) are executable by nobody until
-- granted. Per-schema default privileges can only add, so PUBLIC is revoked globally.
alter default privileges revoke execute on functions from public;
alter default privileges in schema public revoke execute on functions from anon, authenticated, service_role;

-- New tables and sequences in `public` carry no client privileges until granted (RLS still
-- applies on top of every grant).
alter default privileges in schema public revoke all on tables from anon, authenticated;
alter default privileges in schema public revoke all on sequences from anon, authenticated;
