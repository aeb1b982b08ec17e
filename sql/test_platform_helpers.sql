-- pgTAP helpers that act as a platform service. Local tests only, never a migration.
--
-- Applied by the superuser after sql/test_helpers.sql: a function owned by a platform role can
-- only be created by a superuser, and `postgres` (like on hosted projects) is not a member of
-- those roles, so it cannot switch to them itself.

-- Sign a user up the way GoTrue does: the insert into auth.users runs as `supabase_auth_admin`,
-- which has no rights on our tables, so the signup trigger and the deferred balance check (run
-- here, still as that role) must work on their own privileges. Returns the new user's id.
create or replace function tests.sign_up_as_auth_service(identifier text, anonymous boolean default false)
returns uuid
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  user_id uuid;
begin
  insert into auth.users (id, aud, role, email, is_anonymous, raw_user_meta_data)
  values (
    gen_random_uuid(), 'authenticated', 'authenticated',
    case when anonymous then null else identifier || '@test.kiln.local' end,
    anonymous, jsonb_build_object('test_identifier', identifier))
  returning id into user_id;
  set constraints all immediate;
  set constraints all deferred;
  return user_id;
end
$$;
alter function tests.sign_up_as_auth_service(text, boolean) owner to supabase_auth_admin;
revoke all on function tests.sign_up_as_auth_service(text, boolean) from public;
grant execute on function tests.sign_up_as_auth_service(text, boolean) to postgres;

-- Delete a user the way GoTrue does (auth.admin.deleteUser): a delete on auth.users as
-- `supabase_auth_admin`, whose cascade reaches the profile and everything hanging off it.
create or replace function tests.delete_as_auth_service(user_id uuid)
returns void
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  delete from auth.users u where u.id = delete_as_auth_service.user_id;
  set constraints all immediate;
  set constraints all deferred;
end
$$;
alter function tests.delete_as_auth_service(uuid) owner to supabase_auth_admin;
revoke all on function tests.delete_as_auth_service(uuid) from public;
grant execute on function tests.delete_as_auth_service(uuid) to postgres;

-- Make the installed pg_cron look like another version (pg_extension.extversion), as when the
-- platform upgrades the extension under jobs scheduled by the older one. For a test's own
-- transaction only: its rollback puts the catalog row back. Only a superuser writes pg_extension.
create or replace function tests.pretend_pg_cron_version(version text)
returns void
language sql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
  update pg_catalog.pg_extension set extversion = pretend_pg_cron_version.version where extname = 'pg_cron'
$$;
revoke all on function tests.pretend_pg_cron_version(text) from public;
grant execute on function tests.pretend_pg_cron_version(text) to postgres;
