-- Why: the API roles never need temporary objects (PostgREST runs single statements), and a
-- session that can create them can shadow types inside functions that run with more rights (see
-- 20261130110100). Postgres grants TEMP to PUBLIC, so it can only be taken from the API roles by
-- revoking it from PUBLIC; every other role that logs in (the owner, the platform's services)
-- gets it back explicitly, unless an API role would inherit it from that role. `authenticator`
-- is left out too: its sessions become API roles. This needs the database owner: on hosted
-- projects `postgres` owns the project database; where it does not, the statements only warn
-- and change nothing, and the search_path rule of 20261130110100 still holds.

do $$
declare
  r name;
begin
  execute pg_catalog.format('revoke temporary on database %I from public', pg_catalog.current_database());
  for r in
    select g.rolname
      from pg_catalog.pg_roles g
     where g.rolcanlogin
       and g.rolname not in ('anon', 'authenticated', 'service_role', 'authenticator')
       and not exists (
         select 1 from pg_catalog.unnest(array['anon', 'authenticated', 'service_role']) api (role)
          where pg_catalog.pg_has_role(api.role, g.oid, 'usage'))
  loop
    execute pg_catalog.format('grant temporary on database %I to %I', pg_catalog.current_database(), r);
  end loop;
end
$$;
