-- Platform bootstrap: what hosted Supabase already provides before our first migration runs.
--
-- Local development and tests only. This file is never a migration and never deploys: on the
-- platform every object below already exists. Keep it to what our migrations rely on, shaped
-- like the platform's own objects (names, columns, owners, grants), so the same migrations run
-- on both, with the same privileges.
--
-- Run as `supabase_admin`, the platform's superuser (the local cluster is initialised with it).
-- Everything else connects as `postgres`, which, as on hosted projects, is NOT a superuser.
-- Each section names the supabase/postgres file it follows (migrations/db/init-scripts/*,
-- migrations/db/migrations/*, ansible/files/postgresql_extension_custom_scripts/*), or the
-- upstream project (supabase/auth, supabase/storage, supabase/vault, supabase/pg_net).
-- Idempotent: safe to apply again to a database that already has it.

do $$
begin
  if not (select rolsuper from pg_catalog.pg_roles where rolname = current_user) then
    raise exception 'the platform bootstrap must run as the superuser supabase_admin, not as %', current_user;
  end if;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Roles (init-scripts/00000000000000-initial-schema.sql; migrations 10000000000000_demote-postgres,
-- 20230529180330_alter_api_roles_for_inherit). `postgres` is the project owner's role: no
-- superuser, but createrole, bypassrls and replication, and a member of the three API roles so
-- it can act as them (20250605172253 grants them with admin option on Postgres 16+).
-- `authenticator` logs in for PostgREST and switches to an API role per request. The platform's
-- cluster was initialised by `postgres` and demoted it; locally `supabase_admin` initialises the
-- cluster, so `postgres` owns no catalog objects.
-- ---------------------------------------------------------------------------------------------
do $$
declare
  r text;
begin
  if not exists (select 1 from pg_catalog.pg_roles where rolname = 'postgres') then
    create role postgres;
  end if;
  foreach r in array array['anon', 'authenticated', 'service_role'] loop
    if not exists (select 1 from pg_catalog.pg_roles where rolname = r) then
      execute pg_catalog.format('create role %I nologin', r);
    end if;
  end loop;
  if not exists (select 1 from pg_catalog.pg_roles where rolname = 'authenticator') then
    create role authenticator;
  end if;
  -- supabase/auth (GoTrue) and supabase/storage connect as these and own their schemas' tables
  -- (init-scripts 00000000000001-auth-schema.sql, 00000000000002-storage-schema.sql).
  if not exists (select 1 from pg_catalog.pg_roles where rolname = 'supabase_auth_admin') then
    create role supabase_auth_admin;
  end if;
  if not exists (select 1 from pg_catalog.pg_roles where rolname = 'supabase_storage_admin') then
    create role supabase_storage_admin;
  end if;
end
$$;

alter role postgres nosuperuser createdb createrole login replication bypassrls;
alter role anon nologin inherit;
alter role authenticated nologin inherit;
alter role service_role nologin inherit bypassrls;
alter role authenticator login noinherit;
-- 20260821154147_revoke_createrole_from_auth_admin: GoTrue's role no longer creates roles.
alter role supabase_auth_admin login noinherit nocreaterole noreplication;
alter role supabase_storage_admin login noinherit createrole noreplication;

grant anon, authenticated, service_role to authenticator;
grant anon, authenticated, service_role to postgres;

-- The API roles' statement timeouts (initial-schema) and PostgREST's (20221028101028).
alter role anon set statement_timeout = '3s';
alter role authenticated set statement_timeout = '8s';
alter role authenticator set statement_timeout = '8s';

-- The schemas PostgREST exposes (config.toml [api] schemas). The platform configures this on
-- `authenticator`; it is also set database-wide here so that `supabase db advisors` (splinter),
-- which reads it from its own session, checks exactly the exposed schemas as it does on the platform.
alter role authenticator set pgrst.db_schemas = 'public, graphql_public';
alter database postgres set pgrst.db_schemas = 'public, graphql_public';

-- Search paths (init-scripts/00000000000003-post-setup.sql).
alter role supabase_admin set search_path = "$user", public, auth, extensions;
alter role postgres set search_path = "$user", public, extensions;
alter role anon set search_path = "$user", public, extensions;
alter role authenticated set search_path = "$user", public, extensions;
alter role service_role set search_path = "$user", public, extensions;
alter role supabase_auth_admin set search_path = auth;
alter role supabase_storage_admin set search_path = storage;

-- The project database belongs to `postgres` (demote-postgres: grant all on database postgres
-- to postgres), so `public` (owned by pg_database_owner) is postgres's to build in.
alter database postgres owner to postgres;

-- ---------------------------------------------------------------------------------------------
-- Default privileges in `public` as hosted projects have them today: objects that
-- `supabase_admin` creates there (an extension created without a schema, say) are granted to
-- every API role (initial-schema: "alter default privileges for user supabase_admin in schema
-- public grant all ..."), while objects that `postgres` creates get no grant at all: since the
-- Data API change of 2026-10-30 every grant a project relies on is written in its migrations.
-- ---------------------------------------------------------------------------------------------
grant usage on schema public to postgres, anon, authenticated, service_role;
alter default privileges for role supabase_admin in schema public
  grant all on tables to postgres, anon, authenticated, service_role;
alter default privileges for role supabase_admin in schema public
  grant all on functions to postgres, anon, authenticated, service_role;
alter default privileges for role supabase_admin in schema public
  grant all on sequences to postgres, anon, authenticated, service_role;

-- `extensions` (initial-schema): where the platform installs extensions; usable by the API roles.
create schema if not exists extensions;
alter schema extensions owner to postgres;
grant usage on schema extensions to postgres, anon, authenticated, service_role;

create extension if not exists "uuid-ossp" with schema extensions;
create extension if not exists pgcrypto with schema extensions;

-- ---------------------------------------------------------------------------------------------
-- Privileged extensions. On the platform `postgres` runs `create extension`, and supautils
-- creates the extension as `supabase_admin` and then runs the platform's after-create grants.
-- Here the bootstrap creates them as `supabase_admin` up front, with the same grants, so the
-- migrations' `create extension if not exists ...` finds them and does nothing (Postgres checks
-- for an existing extension before it checks privileges), exactly as on a project where they
-- were enabled from the dashboard first.
-- ---------------------------------------------------------------------------------------------

-- pg_cron (postgresql_extension_custom_scripts/pg_cron/after-create.sql, migrations
-- 20231020085357_revoke_writes_on_cron_job_from_postgres and
-- 20260730000000_revoke_trigger_on_cron_tables_from_postgres): `postgres` calls cron.schedule /
-- cron.unschedule and reads cron.job and cron.job_run_details, but cannot write cron.job.
create extension if not exists pg_cron with schema pg_catalog;
grant usage on schema cron to postgres with grant option;
grant all on all functions in schema cron to postgres with grant option;
alter default privileges for role supabase_admin in schema cron grant all on sequences to postgres with grant option;
alter default privileges for role supabase_admin in schema cron grant all on tables to postgres with grant option;
alter default privileges for role supabase_admin in schema cron grant all on functions to postgres with grant option;
grant all privileges on all tables in schema cron to postgres with grant option;
revoke all on table cron.job from postgres;
grant select on table cron.job to postgres with grant option;
revoke trigger on cron.job_run_details from postgres;

-- pg_net (init-scripts/00000000000003-post-setup.sql's extensions.grant_pg_net_access as
-- amended by 20250220051611_pg_net_perms_fix: for pg_net >= 0.12 the event trigger only grants
-- usage on `net`). The extension's own script grants usage on `net`, all on its tables and
-- sequences to PUBLIC, and leaves EXECUTE on its functions to PUBLIC; all of it is granted by
-- `supabase_admin`, so `postgres` cannot revoke any of it (README: "What the API roles can
-- reach in `net`").
create extension if not exists pg_net with schema extensions;
do $$
begin
  if not exists (select 1 from pg_catalog.pg_roles where rolname = 'supabase_functions_admin') then
    create role supabase_functions_admin noinherit createrole login noreplication;
  end if;
end
$$;
grant usage on schema net to supabase_functions_admin, postgres, anon, authenticated, service_role;

-- plpgsql_check: `supabase db lint` runs `create extension if not exists plpgsql_check` in a
-- transaction it rolls back; supautils would create it as supabase_admin, so it exists here.
create extension if not exists plpgsql_check with schema extensions;

-- ---------------------------------------------------------------------------------------------
-- auth (init-scripts/00000000000001-auth-schema.sql; supabase/auth migrations; migrations
-- 20211124212715_update-auth-owner, 10000000000000_demote-postgres): the schema belongs to
-- supabase_admin, GoTrue's role owns the tables and the JWT helpers. `postgres` may read and
-- write the tables (seeds insert users; triggers on auth.users are the documented signup hook)
-- but, as on hosted projects today, cannot create objects in the schema.
-- ---------------------------------------------------------------------------------------------
create schema if not exists auth authorization supabase_admin;
grant all on schema auth to supabase_auth_admin;
grant usage on schema auth to postgres, anon, authenticated, service_role;

set role supabase_auth_admin;

create table if not exists auth.users (
  instance_id uuid,
  id uuid primary key,
  aud varchar(255),
  role varchar(255),
  email varchar(255),
  encrypted_password varchar(255),
  email_confirmed_at timestamptz,
  raw_app_meta_data jsonb,
  raw_user_meta_data jsonb,
  is_super_admin boolean,
  is_anonymous boolean not null default false,
  created_at timestamptz default now(),
  updated_at timestamptz default now(),
  deleted_at timestamptz
);
comment on table auth.users is 'Auth: Stores user login data within a secure schema.';
alter table auth.users enable row level security;

create or replace function auth.uid() returns uuid
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$$;

create or replace function auth.role() returns text
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.role', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
  )::text
$$;

create or replace function auth.email() returns text
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.email', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email')
  )::text
$$;

create or replace function auth.jwt() returns jsonb
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')
  )::jsonb
$$;

reset role;

grant all on all tables in schema auth to postgres;
grant execute on function auth.uid(), auth.role(), auth.email(), auth.jwt()
  to postgres, anon, authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- storage (init-scripts/00000000000002-storage-schema.sql; supabase/storage migrations, among
-- them 0050's protect_delete triggers; 20240319072844 and 20250709135250): supabase_admin owns
-- the schema, the Storage API's role owns the tables, and whatever that role creates is granted
-- to postgres and the API roles by its default privileges. Direct deletes from the tables are
-- refused unless the Storage API's own session setting allows them.
-- ---------------------------------------------------------------------------------------------
create schema if not exists storage authorization supabase_admin;
grant all on schema storage to supabase_storage_admin with grant option;
grant create on database postgres to supabase_storage_admin;
grant usage on schema storage to postgres with grant option;
grant usage on schema storage to anon, authenticated, service_role;
alter default privileges for role supabase_storage_admin in schema storage
  grant all on tables to postgres, anon, authenticated, service_role;
alter default privileges for role supabase_storage_admin in schema storage
  grant all on functions to postgres, anon, authenticated, service_role;
alter default privileges for role supabase_storage_admin in schema storage
  grant all on sequences to postgres, anon, authenticated, service_role;

set role supabase_storage_admin;

create table if not exists storage.buckets (
  id text primary key,
  name text not null unique,
  owner uuid,
  owner_id text,
  public boolean default false,
  avif_autodetection boolean default false,
  file_size_limit bigint,
  allowed_mime_types text[],
  created_at timestamptz default now(),
  updated_at timestamptz default now()
);

create table if not exists storage.objects (
  id uuid primary key default gen_random_uuid(),
  bucket_id text references storage.buckets (id),
  name text,
  owner uuid,
  owner_id text,
  metadata jsonb,
  user_metadata jsonb,
  path_tokens text[] generated always as (string_to_array(name, '/')) stored,
  version text,
  created_at timestamptz default now(),
  updated_at timestamptz default now(),
  last_accessed_at timestamptz default now(),
  unique (bucket_id, name)
);
-- The Storage server's prefix index (name_prefix_search), which prefix lookups of a folder use.
create index if not exists name_prefix_search on storage.objects (name text_pattern_ops);

alter table storage.buckets enable row level security;
alter table storage.objects enable row level security;

-- The platform refuses direct deletes from the storage tables (they would orphan the files):
-- only the Storage server deletes, with storage.allow_delete_query set for its transaction.
create or replace function storage.protect_delete() returns trigger
language plpgsql
as $$
begin
  if coalesce(current_setting('storage.allow_delete_query', true), 'false') != 'true' then
    raise exception 'Direct deletion from storage tables is not allowed. Use the Storage API instead.'
      using hint = 'This prevents accidental data loss from orphaned objects.', errcode = '42501';
  end if;
  return null;
end
$$;

drop trigger if exists protect_buckets_delete on storage.buckets;
create trigger protect_buckets_delete before delete on storage.buckets
  for each statement execute function storage.protect_delete();
drop trigger if exists protect_objects_delete on storage.objects;
create trigger protect_objects_delete before delete on storage.objects
  for each statement execute function storage.protect_delete();

create or replace function storage.foldername(name text) returns text[]
language plpgsql immutable
as $$
declare
  _parts text[];
begin
  select string_to_array(name, '/') into _parts;
  return _parts[1:array_length(_parts, 1) - 1];
end
$$;

create or replace function storage.filename(name text) returns text
language plpgsql immutable
as $$
declare
  _parts text[];
begin
  select string_to_array(name, '/') into _parts;
  return _parts[array_length(_parts, 1)];
end
$$;

create or replace function storage.extension(name text) returns text
language plpgsql immutable
as $$
declare
  _parts text[];
  _filename text;
begin
  select string_to_array(name, '/') into _parts;
  select _parts[array_length(_parts, 1)] into _filename;
  return reverse(split_part(reverse(_filename), '.', 1));
end
$$;

grant execute on function storage.foldername(text), storage.filename(text), storage.extension(text)
  to anon, authenticated, service_role;

reset role;

-- Policies on storage.objects. Hosted projects let `postgres` create, alter and drop policies on
-- storage.objects through supautils' `policy_grants` (a hook in the server), while refusing it
-- `alter table` and `comment on policy` there (supabase/cli#4114, supabase/supabase#41126).
-- Without supautils the nearest local equivalent is membership in the table owner's role
-- (supabase/postgres 20220609081115 did exactly this before the platform moved to
-- policy_grants). That membership would also pass on the owner's CREATE on the schema, which the
-- local Storage stand-in never needs (the real server creates its own tables; here the bootstrap
-- did), so the role keeps only usage. A test keeps our migrations to what hosted allows there.
grant supabase_storage_admin to postgres;
revoke create on schema storage from supabase_storage_admin;

-- ---------------------------------------------------------------------------------------------
-- vault (supabase/vault 0.3 for the objects; postgresql_extension_custom_scripts/
-- supabase_vault/after-create.sql and supabase/postgres#1539 for the grants; create_secret and
-- update_secret are security definer owned by supabase_admin on hosted projects). pgsodium and
-- supabase_vault are not packaged for Debian, so this stand-in keeps the API and the privileges
-- but stores the secret unencrypted: fine for throwaway local clusters and nowhere else.
-- `postgres` reads `vault.decrypted_secrets` and deletes secrets; it writes them only through
-- create_secret / update_secret.
-- ---------------------------------------------------------------------------------------------
create schema if not exists vault authorization supabase_admin;

create table if not exists vault.secrets (
  id uuid primary key default gen_random_uuid(),
  name text,
  description text not null default '',
  secret text not null,
  key_id uuid,
  nonce bytea,
  created_at timestamptz not null default current_timestamp,
  updated_at timestamptz not null default current_timestamp
);
comment on table vault.secrets is 'Table with encrypted `secret` column for storing sensitive information on disk.';
create unique index if not exists secrets_name_idx on vault.secrets (name) where name is not null;

create or replace view vault.decrypted_secrets as
  select s.id, s.name, s.description, s.secret, s.secret as decrypted_secret, s.key_id, s.nonce, s.created_at, s.updated_at
  from vault.secrets s;

create or replace function vault.create_secret(
  new_secret text,
  new_name text default null,
  new_description text default '',
  new_key_id uuid default null
) returns uuid
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  new_id uuid;
begin
  insert into vault.secrets (secret, name, description)
  values (new_secret, new_name, new_description)
  returning id into new_id;
  return new_id;
end
$$;

create or replace function vault.update_secret(
  secret_id uuid,
  new_secret text default null,
  new_name text default null,
  new_description text default null,
  new_key_id uuid default null
) returns void
language plpgsql volatile security definer
set search_path = ''
as $$
begin
  update vault.secrets s
     set secret = coalesce(new_secret, s.secret),
         name = coalesce(new_name, s.name),
         description = coalesce(new_description, s.description),
         updated_at = now()
   where s.id = secret_id;
end
$$;

revoke all on vault.secrets, vault.decrypted_secrets from public, anon, authenticated;
revoke all on function vault.create_secret(text, text, text, uuid) from public;
revoke all on function vault.update_secret(uuid, text, text, text, uuid) from public;
grant usage on schema vault to postgres with grant option;
grant select, delete on vault.secrets, vault.decrypted_secrets to postgres with grant option;
grant execute on function vault.create_secret(text, text, text, uuid), vault.update_secret(uuid, text, text, text, uuid)
  to postgres with grant option;
grant usage on schema vault to service_role;
grant select, delete on vault.secrets, vault.decrypted_secrets to service_role;
grant execute on function vault.create_secret(text, text, text, uuid), vault.update_secret(uuid, text, text, text, uuid)
  to service_role;

-- ---------------------------------------------------------------------------------------------
-- Realtime: the schema the Realtime server owns (20260506172403: postgres gets usage, no
-- create) and the publication it reads, owned by `postgres` so that migrations add tables to
-- it (init-scripts create it as the project owner). Tables join it in migrations.
-- ---------------------------------------------------------------------------------------------
create schema if not exists realtime authorization supabase_admin;
grant usage on schema realtime to postgres with grant option;
grant usage on schema realtime to anon, authenticated, service_role;

do $$
begin
  if not exists (select 1 from pg_catalog.pg_publication where pubname = 'supabase_realtime') then
    create publication supabase_realtime;
  end if;
end
$$;
alter publication supabase_realtime owner to postgres;
