-- Only a hash of a callback token is stored. A KIE reply that echoes the createTask request (its
-- callBackUrl) and has no message of its own is logged as an excerpt of its body: the token's
-- value is redacted there, in the request log and in the pipeline's last_error alike.
begin;
select plan(7);
\ir dispatch_fixture.sql

create temp table jobs as select n, pg_temp.start_job('tok_user') as job_id from generate_series(1, 2) n;
create function pg_temp.echo(job uuid) returns text language sql as $$
  select jsonb_build_object('code', 500, 'data', jsonb_build_object('param', jsonb_build_object(
           'callBackUrl', format('https://fn.test/functions/v1/kie-callback?job=%s&attempt=1&token=%s', job,
                                 '5f0c6a1e9b2d4c7f8a3e1d0b6c9f2a4e7b1d3c5e8f0a2b4c6d8e0f1a3b5c7d9e'))::text))::text
$$;

-- 1: createTask answers 500 with the request echoed and no message.
select pg_temp.respond(job_id, 'create', 500, pg_temp.echo(job_id)) from jobs where n = 1;
-- 2: accepted; then a poll answers 500 the same way.
select pg_temp.respond(job_id, 'create', 200, '{"code": 200, "data": {"taskId": "task-2"}}') from jobs where n = 2;
select private.reconcile_tick('2030-01-01 00:00:00+00');
update private.job_pipeline set deadline_at = '2030-01-02 00:00:00+00' where job_id in (select job_id from jobs);
select private.poll_tick('2030-01-01 00:00:15+00');
select pg_temp.respond(job_id, 'poll', 500, pg_temp.echo(job_id)) from jobs where n = 2;
select private.reconcile_tick('2030-01-01 00:00:16+00');

select is((select count(*)::int from private.requests r join jobs using (job_id) where r.error like '%kie-callback?job=%'), 2,
  'both answers were logged as excerpts of their bodies');
select is((select count(*)::int from private.requests r join jobs using (job_id) where r.error ~ '5f0c6a1e|token=[^[]'), 0,
  'the request log holds no token value');
select is((select count(*)::int from private.requests r join jobs using (job_id) where r.error like '%token=[redacted]%'), 2,
  'it says where the token was');
select ok((select p.last_error like 'create body 500: %token=[redacted]%' and p.last_error !~ '5f0c6a1e'
             from private.job_pipeline p join jobs using (job_id) where n = 1),
  'so does the failed job''s last_error');

select is(private.log_excerpt('callback token%3D5f0c6a1e9b2d&x=1'), 'callback token%3D[redacted]&x=1',
  'a percent-encoded token is redacted too');
select is(private.log_excerpt('"callBackUrl":"https://fn/kie-callback?job=1\u0026attempt=1\u0026token=5f0c6a1e\u0026z"'),
  '"callBackUrl":"https://fn/kie-callback?job=1\u0026attempt=1\u0026token=[redacted]\u0026z"',
  'and in JSON that escapes the ampersand, only the value goes');
select is(private.log_excerpt(private.log_excerpt('token=5f0c')), 'token=[redacted]', 'redacting twice changes nothing');

select * from finish();
rollback;
