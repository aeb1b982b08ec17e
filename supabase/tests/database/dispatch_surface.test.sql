-- No client role can call or read any part of the pipeline: private functions, tables and
-- views, the trigger functions; job rows carry nothing secret, and the pipeline's tables never
-- stream through Realtime.
begin;
select plan(8);

select is_empty(
  $$ select format('%s %s', r.rolname, p.oid::regprocedure)
       from pg_proc p cross join pg_roles r
      where p.pronamespace = 'private'::regnamespace and r.rolname in ('anon', 'authenticated', 'service_role', 'authenticator')
        and has_function_privilege(r.oid, p.oid, 'execute') $$,
  'no API role may execute any private function (ticks, transitions, callback functions, secret reader)');
select is_empty(
  $$ select format('%s %s', r.rolname, c.oid::regclass)
       from pg_class c cross join pg_roles r
      where c.relnamespace = 'private'::regnamespace and c.relkind in ('r', 'v', 'm', 'S')
        and r.rolname in ('anon', 'authenticated', 'service_role', 'authenticator')
        and (has_table_privilege(r.oid, c.oid, 'select') or has_table_privilege(r.oid, c.oid, 'insert')
             or has_table_privilege(r.oid, c.oid, 'update') or has_table_privilege(r.oid, c.oid, 'delete')) $$,
  'no API role may read or write any private table or view (pipeline, request log, alerts, settings, operator views)');
select ok(not has_schema_privilege('anon', 'private', 'usage') and not has_schema_privilege('authenticated', 'private', 'usage')
          and not has_schema_privilege('service_role', 'private', 'usage'),
  'the private schema is closed to the API roles');
select is_empty(
  $$ select c.oid::regclass from pg_class c
      where c.relnamespace = 'private'::regnamespace and c.relkind = 'r' and not c.relrowsecurity $$,
  'RLS is on for every private table');
select is_empty(
  $$ select schemaname || '.' || tablename from pg_publication_tables
      where pubname = 'supabase_realtime' and schemaname <> 'public' $$,
  'only public tables stream through Realtime: the pipeline''s state never does');
select is_empty(
  $$ select a.attname from pg_attribute a
      where a.attrelid = 'public.generation_jobs'::regclass and a.attnum > 0 and not a.attisdropped
        and a.attname ~ '(token|secret|task_id|attempt|hash|next_run|deadline)' $$,
  'the job row a client reads holds no token, task id or pipeline state');
select results_eq(
  $$ select p.oid::regprocedure::text, p.prosecdef from pg_proc p
      where p.oid in ('private.enqueue_job()'::regprocedure, 'private.guard_cancel()'::regprocedure,
                      'private.complete_job(uuid, integer, text, text[], timestamptz)'::regprocedure,
                      'private.secret(text)'::regprocedure)
      order by 1 $$,
  $$ values ('private.complete_job(uuid,integer,text,text[],timestamp with time zone)', false),
            ('private.enqueue_job()', false), ('private.guard_cancel()', false), ('private.secret(text)', false) $$,
  'pipeline functions are security invoker: they run with the caller''s (the owner''s) rights, never lend them');
select is(
  (select string_agg(format('%s|%s', name, every_seconds), ', ' order by name) from private.ticks where name in
    ('kiln-account', 'kiln-deadlines', 'kiln-dispatch', 'kiln-housekeeping', 'kiln-poll', 'kiln-reconcile')),
  'kiln-account|60, kiln-deadlines|5, kiln-dispatch|1, kiln-housekeeping|600, kiln-poll|1, kiln-reconcile|1',
  'the pipeline''s ticks are registered at their cadence');

select * from finish();
rollback;
