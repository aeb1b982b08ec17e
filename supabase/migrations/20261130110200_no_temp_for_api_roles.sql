-- Why: the API roles never need temporary objects (PostgREST runs single statements), and a
-- session that can create them can shadow types inside functions that run with more rights (see
-- 20261130110100). Postgres grants TEMP to PUBLIC, so it can only be taken from the API roles by
-- revoking it from PUBLIC; every other existing role (the owner, the platform's services) gets
-- it back explicitly. This needs the database owner: on hosted projects `postgres` owns the
-- project database; where it does not, both statements only warn and change nothing, and the
-- search_path rule above still holds. `authenticator` is left out too: its sessions become API
-- roles, and Postgres checks TEMP once, when a session first creates a temporary object.

do $$
declare
  r name;
begin
  execute pg_catalog.format('revoke temporary on database %I from public', pg_catalog.current_database());
  for r in
    select rolname
      from pg_catalog.pg_roles
     where rolname not like 'pg\_%'
       and rolname not in ('anon', 'authenticated', 'service_role', 'authenticator')
  loop
    execute pg_catalog.format('grant temporary on database %I to %I', pg_catalog.current_database(), r);
  end loop;
end
$$;
