-- The platform as hosted Supabase has it, and what our migrations may rely on: `postgres` is the
-- project owner but no superuser; the platform's schemas belong to its own roles; Vault, pg_cron
-- and pg_net grant what the platform grants. Also pins what the API roles can do in `net`, which
-- the project cannot change (README: "What the API roles can reach in net").
begin;
select plan(50);

-- =============================================================================================
-- Roles
-- =============================================================================================
select results_eq(
  $$ select rolsuper, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, rolbypassrls from pg_roles where rolname = 'postgres' $$,
  $$ values (false, true, true, true, true, true) $$,
  'postgres is nosuperuser createrole createdb login replication bypassrls');
select ok(current_user = 'postgres' and not (select rolsuper from pg_roles where rolname = current_user),
  'the tests run as postgres, which is not a superuser');
select is_empty(
  $$ select r from unnest(array['anon', 'authenticated', 'service_role']) r where not pg_has_role('postgres', r, 'member') $$,
  'postgres is a member of anon, authenticated and service_role');
select results_eq(
  $$ select rolname::text collate "default", rolinherit, rolcanlogin, rolbypassrls from pg_roles
      where rolname in ('anon', 'authenticated', 'service_role') order by 1 $$,
  $$ values ('anon', true, false, false), ('authenticated', true, false, false), ('service_role', true, false, true) $$,
  'the API roles inherit, cannot log in, and only the service role bypasses RLS');
select results_eq(
  $$ select r.rolname::text collate "default", c.setting collate "default"
       from pg_db_role_setting s join pg_roles r on r.oid = s.setrole, unnest(s.setconfig) c (setting)
      where r.rolname in ('anon', 'authenticated') and c.setting like 'statement_timeout=%' order by 1 $$,
  $$ values ('anon', 'statement_timeout=3s'), ('authenticated', 'statement_timeout=8s') $$,
  'the API roles carry the platform''s statement timeouts');
select is((select datdba::regrole::text from pg_database where datname = current_database()), 'postgres',
  'postgres owns the project database');

-- =============================================================================================
-- Default privileges in public as hosted today: none for what postgres creates, everything for
-- what supabase_admin creates; the grants we rely on are in our migrations
-- =============================================================================================
select is_empty(
  $$ select d.defaclobjtype, a.grantee::regrole from pg_default_acl d, aclexplode(d.defaclacl) a
      where d.defaclrole = 'postgres'::regrole and a.grantee in ('anon'::regrole, 'authenticated'::regrole, 'service_role'::regrole)
        and a.privilege_type in ('SELECT', 'INSERT', 'UPDATE', 'DELETE', 'EXECUTE', 'USAGE') $$,
  'objects postgres creates get no default grants for the API roles');
select results_eq(
  $$ select count(distinct (d.defaclobjtype, a.grantee))::integer from pg_default_acl d, aclexplode(d.defaclacl) a
      where d.defaclrole = 'supabase_admin'::regrole and d.defaclnamespace = 'public'::regnamespace
        and a.grantee in ('anon'::regrole, 'authenticated'::regrole, 'service_role'::regrole) $$,
  $$ values (9) $$,
  'objects supabase_admin creates in public are granted to all three API roles (tables, functions, sequences)');
select results_eq(
  $$ select c.relname::text collate "default",
            has_table_privilege('service_role', c.oid, 'select'),
            has_table_privilege('service_role', c.oid, 'insert') or has_table_privilege('service_role', c.oid, 'update')
              or has_table_privilege('service_role', c.oid, 'delete')
       from pg_class c where c.oid in ('public.plans'::regclass, 'public.models'::regclass, 'public.styles'::regclass, 'public.templates'::regclass)
      order by 1 $$,
  $$ values ('models', true, false), ('plans', true, false), ('styles', true, false), ('templates', true, false) $$,
  'the service role reads the catalogue tables, and only reads them');

-- =============================================================================================
-- Owners, and no CREATE for postgres in the platform's schemas
-- =============================================================================================
select results_eq(
  $$ select c.oid::regclass::text collate "default", c.relowner::regrole::text collate "default" from pg_class c
      where c.oid in ('auth.users'::regclass, 'storage.buckets'::regclass, 'storage.objects'::regclass,
                      'vault.secrets'::regclass, 'vault.decrypted_secrets'::regclass) order by 1 $$,
  $$ values ('auth.users', 'supabase_auth_admin'), ('storage.buckets', 'supabase_storage_admin'),
            ('storage.objects', 'supabase_storage_admin'), ('vault.decrypted_secrets', 'supabase_admin'),
            ('vault.secrets', 'supabase_admin') $$,
  'GoTrue''s role owns auth.users, the Storage API''s role the storage tables, supabase_admin the vault');
select is((select proowner::regrole::text from pg_proc where oid = 'auth.uid()'::regprocedure), 'supabase_auth_admin',
  'GoTrue''s role owns auth.uid()');
select is_empty(
  $$ select s from unnest(array['auth', 'storage', 'realtime', 'vault', 'cron', 'net']) s
      where has_schema_privilege('postgres', s, 'create') $$,
  'postgres cannot create objects in auth, storage, realtime, vault, cron or net');
select throws_ok('create table auth.kiln_probe (id integer)', '42501', null, 'creating a table in auth is refused');
select ok(has_table_privilege('postgres', 'auth.users', 'insert, select, update, delete, references, trigger'),
  'postgres reads and writes auth.users, references it and puts triggers on it');

-- Storage refuses direct deletes unless the Storage API's own setting allows them.
insert into storage.buckets (id, name) values ('kiln-probe', 'kiln-probe');
insert into storage.objects (bucket_id, name) values ('kiln-probe', 'a/b.png');
select throws_ok($$ delete from storage.objects where bucket_id = 'kiln-probe' $$, '42501',
  'Direct deletion from storage tables is not allowed. Use the Storage API instead.', 'a direct delete from storage.objects is refused');
select throws_ok($$ delete from storage.buckets where id = 'kiln-probe' $$, '42501', null, 'so is one from storage.buckets');
select lives_ok($$ select set_config('storage.allow_delete_query', 'true', true);
                   delete from storage.objects where bucket_id = 'kiln-probe' $$,
  'the Storage API''s session setting allows it');

-- =============================================================================================
-- Vault: postgres and the service role write through the functions, read decrypted secrets
-- =============================================================================================
select isnt(vault.create_secret('probe-value', 'kiln_probe_secret', 'probe'), null, 'postgres creates a secret with vault.create_secret');
select is((select decrypted_secret from vault.decrypted_secrets where name = 'kiln_probe_secret'), 'probe-value',
  'postgres reads it from vault.decrypted_secrets');
select lives_ok($$ select vault.update_secret((select id from vault.secrets where name = 'kiln_probe_secret'), 'probe-value-2') $$,
  'postgres updates it with vault.update_secret');
select throws_ok($$ insert into vault.secrets (secret, name) values ('x', 'kiln_probe_direct') $$, '42501', null,
  'postgres cannot insert into vault.secrets directly');
select throws_ok($$ update vault.secrets set secret = 'x' $$, '42501', null, 'nor update it directly');
select ok(has_table_privilege('postgres', 'vault.secrets', 'delete'), 'postgres may delete secrets');
select results_eq(
  $$ select p.proname::text collate "default", p.prosecdef, p.proowner::regrole::text collate "default" from pg_proc p
      where p.pronamespace = 'vault'::regnamespace and p.proname in ('create_secret', 'update_secret') order by 1 $$,
  $$ values ('create_secret', true, 'supabase_admin'), ('update_secret', true, 'supabase_admin') $$,
  'create_secret and update_secret are security definer, owned by supabase_admin');

select tests.authenticate_as_service_role();
select is((select decrypted_secret from vault.decrypted_secrets where name = 'kiln_probe_secret'), 'probe-value-2',
  'the service role reads decrypted secrets');
select isnt(vault.create_secret('svc', 'kiln_probe_service'), null, 'the service role creates secrets');
select tests.act_as_anon();
select throws_ok('select * from vault.decrypted_secrets', '42501', null, 'anon cannot read the vault');
select throws_ok($$ select vault.create_secret('x') $$, '42501', null, 'anon cannot create secrets');
select tests.create_supabase_user('pp_user') is not null as created \gset
select tests.authenticate_as('pp_user');
select throws_ok('select * from vault.decrypted_secrets', '42501', null, 'a user cannot read the vault');
select throws_ok('select * from vault.secrets', '42501', null, 'nor the encrypted table');
select tests.act_as_owner();

-- =============================================================================================
-- pg_cron: postgres schedules through the functions and reads, never writes cron.job itself
-- =============================================================================================
select isnt(cron.schedule('kiln-probe', '* * * * *', 'select 1'), null, 'postgres schedules a job with cron.schedule');
select results_eq($$ select username::text collate "default", command::text collate "default" from cron.job where jobname = 'kiln-probe' $$,
  $$ values ('postgres', 'select 1') $$, 'postgres reads cron.job; the job runs as postgres');
select lives_ok('select count(*) from cron.job_run_details', 'postgres reads cron.job_run_details');
select throws_ok($$ update cron.job set command = 'select 2' where jobname = 'kiln-probe' $$, '42501', null,
  'postgres cannot update cron.job directly');
select throws_ok($$ insert into cron.job (schedule, command) values ('* * * * *', 'select 3') $$, '42501', null,
  'nor insert into it');
select ok(cron.unschedule('kiln-probe'), 'postgres unschedules with cron.unschedule');
select is_empty(
  $$ select r from unnest(array['anon', 'authenticated', 'service_role']) r where has_schema_privilege(r, 'cron', 'usage') $$,
  'the API roles have no usage on cron');

-- =============================================================================================
-- pg_net as the platform ships it: supabase_admin owns `net` and granted its tables and
-- functions to PUBLIC, so every role with a SQL session can queue requests and read the queue
-- and the responses. postgres cannot take that back (a revoke by a non-grantor only warns).
-- =============================================================================================
select is((select nspowner::regrole::text from pg_namespace where nspname = 'net'), 'supabase_admin', 'supabase_admin owns net');
set local client_min_messages = error; -- each revoke below warns "no privileges could be revoked"
revoke all on net.http_request_queue, net._http_response from public, anon, authenticated, service_role;
revoke execute on all functions in schema net from public, anon, authenticated, service_role;
revoke usage on schema net from public, anon, authenticated, service_role;
set local client_min_messages = warning;
select is_empty(
  $$ select r from unnest(array['anon', 'authenticated', 'service_role']) r
      where not (has_schema_privilege(r, 'net', 'usage')
                 and has_table_privilege(r, 'net.http_request_queue', 'select, insert, delete')
                 and has_table_privilege(r, 'net._http_response', 'select, delete')
                 and has_function_privilege(r, 'net.http_post(text, jsonb, jsonb, jsonb, integer)', 'execute')) $$,
  'revokes by postgres leave the API roles'' access to net as the platform granted it');

create temp table net_probe (role text primary key, request_id bigint);
grant all on net_probe to anon, authenticated, service_role;
select tests.act_as_anon();
insert into net_probe values ('anon', net.http_post('https://example.test/anon', '{"from": "anon"}'::jsonb));
select tests.authenticate_as('pp_user');
insert into net_probe values ('authenticated', net.http_get('https://example.test/user'));
select tests.authenticate_as_service_role();
insert into net_probe values ('service_role', net.http_get('https://example.test/service'));
select tests.act_as_owner();
select results_eq(
  $$ select p.role collate "default", q.url collate "default" from net_probe p join net.http_request_queue q on q.id = p.request_id order by 1 $$,
  $$ values ('anon', 'https://example.test/anon'), ('authenticated', 'https://example.test/user'), ('service_role', 'https://example.test/service') $$,
  'anon, a user and the service role can each queue an HTTP request (residual exposure: no SQL session reaches them through the Data API)');

insert into net._http_response (id, status_code, content, headers) values (-424242, 200, 'probe body', '{"x-probe": "1"}');
select tests.act_as_anon();
select results_eq($$ select url from net.http_request_queue where url = 'https://example.test/service' $$,
  $$ values ('https://example.test/service'::text) $$, 'anon can read every queued request, headers included (residual exposure)');
select results_eq($$ select content from net._http_response where id = -424242 $$, $$ values ('probe body'::text) $$,
  'anon can read every stored response (residual exposure)');
select tests.authenticate_as('pp_user');
select results_eq($$ select content from net._http_response where id = -424242 $$, $$ values ('probe body'::text) $$,
  'so can a user');
select throws_ok('create table net.kiln_probe (id integer)', '42501', null, 'a user cannot create objects in net');
select throws_ok('alter table net._http_response enable row level security', '42501', null, 'nor alter its tables');
select tests.authenticate_as_service_role();
select throws_ok('drop table net.http_request_queue', '42501', null, 'the service role cannot drop them');
select tests.act_as_owner();

-- What the project does control: none of its own places for secrets is readable by an API role.
select is_empty(
  $$ select c.oid::regclass, r.role from pg_class c cross join unnest(array['anon', 'authenticated', 'service_role']) r (role)
      where c.relnamespace in ('private'::regnamespace, 'vault'::regnamespace) and c.relkind in ('r', 'v', 'm')
        and has_table_privilege(r.role, c.oid, 'select')
        and not (r.role = 'service_role' and c.relnamespace = 'vault'::regnamespace) $$,
  'no API role reads a private table; only the service role reads the vault');
select is_empty(
  $$ select r from unnest(array['anon', 'authenticated']) r where has_schema_privilege(r, 'vault', 'usage') $$,
  'anon and authenticated have no usage on vault');

-- =============================================================================================
-- Realtime: the publication belongs to postgres, so migrations add tables to it
-- =============================================================================================
select is((select pubowner::regrole::text from pg_publication where pubname = 'supabase_realtime'), 'postgres',
  'postgres owns the supabase_realtime publication');
select ok(not has_schema_privilege('anon', 'realtime', 'create') and has_schema_privilege('postgres', 'realtime', 'usage'),
  'postgres uses the realtime schema and nobody but its owner builds in it');

select * from finish();
rollback;
