-- kiln_callback, the callback function's login: it executes the six callback functions and
-- reaches nothing else of ours. Like every role with a SQL session it also reaches what pg_net
-- grants to PUBLIC (its queue and responses, its functions), which the project cannot revoke: that
-- much is pinned here so that the README's account of it stays true.
begin;
select plan(8);
\ir dispatch_fixture.sql

select results_eq(
  $$ select rolcanlogin, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolbypassrls from pg_roles where rolname = 'kiln_callback' $$,
  $$ values (true, false, false, false, false, false) $$,
  'kiln_callback logs in and has no other attribute');
select results_eq(
  $$ select p.oid::regprocedure::text from pg_proc p
      where p.pronamespace in ('public'::regnamespace, 'private'::regnamespace)
        and has_function_privilege('kiln_callback', p.oid, 'execute')
        and not has_function_privilege('authenticated', p.oid, 'execute')
      order by 1 $$,
  $$ values ('private.callback_complete(uuid,integer,text,text[],timestamp with time zone)'),
            ('private.callback_discard(uuid,text[],timestamp with time zone)'),
            ('private.callback_fail(uuid,integer,text,text,text,timestamp with time zone)'),
            ('private.callback_non_image(uuid,integer,text,text,timestamp with time zone)'),
            ('private.callback_target(uuid,integer,text)'),
            ('private.interpret_task_report(jsonb)') $$,
  'beyond what every app user may call, it executes exactly the six callback functions');
select is_empty(
  $$ select c.oid::regclass from pg_class c
      where c.relnamespace in ('public'::regnamespace, 'private'::regnamespace) and c.relkind in ('r', 'v', 'm', 'p')
        and has_table_privilege('kiln_callback', c.oid, 'select, insert, update, delete') $$,
  'it reads and writes no table directly');
select ok(not has_database_privilege('kiln_callback', current_database(), 'temp'), 'it has no TEMP');
select results_eq(
  $$ select n.nspname::text collate "default" from pg_namespace n
      where has_schema_privilege('kiln_callback', n.oid, 'usage') and n.nspname not in ('pg_catalog', 'information_schema')
        and n.nspname !~ '^pg_(temp|toast)'
      order by 1 $$,
  $$ values ('net'), ('private'), ('public') $$,
  'the schemas it may use: ours, and pg_net''s (granted to PUBLIC); not auth, storage, vault, cron or extensions');
select results_eq(
  $$ select c.oid::regclass::text from pg_class c
      where c.relnamespace not in ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
        and c.relkind in ('r', 'v', 'm', 'p', 'f') and c.relpersistence <> 't'
        and has_schema_privilege('kiln_callback', c.relnamespace, 'usage')
        and has_table_privilege('kiln_callback', c.oid, 'select, insert, update, delete')
      order by 1 $$,
  $$ values ('net._http_response'), ('net.http_request_queue') $$,
  'the only tables it can touch are pg_net''s, through PUBLIC: treat its password like the KIE key');

create temp table started as select pg_temp.start_job('cr_user') as job_id;
select pg_temp.respond(job_id, 'create', 200, '{"code": 200, "data": {"taskId": "task-cr"}}') from started;
select private.reconcile_tick();
select job_id as started_job from started \gset
-- Where the function stores the delivery: generated-images/<user_id>/<job_id>/<delivery>/.
select 'generated-images/' || user_id || '/' || id || '/d/0.png' as stored_image from public.generation_jobs where id = :'started_job' \gset
grant kiln_callback to postgres;
-- pgTAP is out of kiln_callback's reach too: results go through psql variables.
set local role kiln_callback;
select accepting as target_accepting from private.callback_target(:'started_job', 1, 'task-cr') \gset
select private.callback_complete(:'started_job', 1, 'task-cr', array[:'stored_image']) as completed \gset
reset role;
select is(:'target_accepting'::text, 't', 'as kiln_callback: callback_target answers');
select is(:'completed'::text, 'applied', 'as kiln_callback: callback_complete completes the job');

select * from finish();
rollback;
