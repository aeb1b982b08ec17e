-- Why: the kie-callback function connected as postgres, the project owner, though it needs four
-- functions. It now connects as kiln_callback: a login role that may execute exactly
-- callback_target, interpret_task_report, callback_complete and callback_fail (security definer,
-- owned by postgres, search_path pinned) and nothing else: no table, no other function, no TEMP.
--
-- Platform notes: postgres has CREATEROLE on hosted projects, so a migration may create the role.
-- Its password never is in a migration: the operator sets it once
--   alter role kiln_callback password '<random>';
-- and gives the function KILN_CALLBACK_DB_URL (see the README). Locally the cluster trusts
-- loopback connections, so the tests connect without one.

do $$
begin
  if not exists (select 1 from pg_catalog.pg_roles where rolname = 'kiln_callback') then
    create role kiln_callback login noinherit nocreatedb nocreaterole noreplication nobypassrls connection limit 20;
  end if;
end
$$;
comment on role kiln_callback is
  'The kie-callback Edge Function''s login: executes the four callback functions in private, nothing else.';
alter role kiln_callback set statement_timeout = '15s';

grant usage on schema private to kiln_callback;

alter function private.callback_target(uuid, integer, text) security definer;
alter function private.interpret_task_report(jsonb) security definer;
alter function private.callback_complete(uuid, integer, text, text[], timestamptz) security definer;
alter function private.callback_fail(uuid, integer, text, text, text, timestamptz) security definer;

revoke all on function private.callback_target(uuid, integer, text) from public;
revoke all on function private.interpret_task_report(jsonb) from public;
revoke all on function private.callback_complete(uuid, integer, text, text[], timestamptz) from public;
revoke all on function private.callback_fail(uuid, integer, text, text, text, timestamptz) from public;

grant execute on function private.callback_target(uuid, integer, text) to kiln_callback;
grant execute on function private.interpret_task_report(jsonb) to kiln_callback;
grant execute on function private.callback_complete(uuid, integer, text, text[], timestamptz) to kiln_callback;
grant execute on function private.callback_fail(uuid, integer, text, text, text, timestamptz) to kiln_callback;

select private.pin_search_paths();
