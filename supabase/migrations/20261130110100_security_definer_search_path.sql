-- Why: a function with `search_path = ''` still searches the session's temporary schema first
-- for tables and types (Postgres puts pg_temp first unless the path names it). A caller with a
-- SQL session and TEMP can create `pg_temp.text` or `pg_temp.jsonb` (a domain whose check calls
-- the caller's own temp function) and have it run with the owner's rights inside a
-- security-definer function, or inside any invoker function such a function calls (the private
-- helpers and triggers run as the owner then). Naming pg_catalog first and pg_temp last closes
-- that: built-in types resolve in pg_catalog, and our own names are schema-qualified anyway.
-- Converted here: every security-definer function in `public` and `private`, and every function
-- in `private` (all of them run under a definer or as triggers). Public security-invoker
-- functions keep `search_path = ''`: they run with the caller's rights, there is nothing to
-- gain. The structure test refuses a security-definer function without this path.

create function private.pin_search_paths()
returns integer
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  f regprocedure;
  pinned integer := 0;
begin
  for f in
    select p.oid::regprocedure
      from pg_catalog.pg_proc p
     where (p.prosecdef and p.pronamespace in ('public'::regnamespace, 'private'::regnamespace)
            or p.pronamespace = 'private'::regnamespace)
       and not coalesce(p.proconfig @> array['search_path=pg_catalog, pg_temp'], false)
  loop
    execute pg_catalog.format('alter function %s set search_path = pg_catalog, pg_temp', f);
    pinned := pinned + 1;
  end loop;
  return pinned;
end
$$;
comment on function private.pin_search_paths() is
  'API: Private. Sets search_path = pg_catalog, pg_temp on every security-definer function in public/private and every private function that lacks it; returns how many it changed. Migrations that add such functions call it last.';

select private.pin_search_paths();
