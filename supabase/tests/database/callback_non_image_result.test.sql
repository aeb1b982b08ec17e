-- A result that comes back as bytes that are no image at all (a result host's error page) is
-- retried for results.non_image_grace_seconds from the first delivery that found it; a delivery
-- after that fails the job as the provider outcome "unusable", with one refund. Times are passed
-- in, never waited for.
begin;
select plan(14);
\ir dispatch_fixture.sql

create temp table jobs as select n, pg_temp.start_job('non_image_user') as job_id from generate_series(1, 3) n;
select pg_temp.respond(job_id, 'create', 200, format('{"code": 200, "data": {"taskId": "task-%s"}}', n)) from jobs;
select private.reconcile_tick('2030-01-01 00:00:00+00');
update private.job_pipeline set deadline_at = '2030-01-01 00:15:00+00' where job_id in (select job_id from jobs);
select job_id as job from jobs where n = 1 \gset
select job_id as job2 from jobs where n = 2 \gset
select job_id as job3 from jobs where n = 3 \gset

create function pg_temp.state(job uuid) returns table (status text, error_code text, stage text, deliveries integer, refunds integer)
language sql as $$
  select g.status, g.error_code, p.stage, p.non_image_deliveries,
         (select count(*)::int from public.credit_ledger l where l.job_id = g.id and l.kind = 'refund')
    from public.generation_jobs g join private.job_pipeline p on p.job_id = g.id where g.id = job
$$;

select is(private.setting_number('results.non_image_grace_seconds'), 180::numeric, 'the grace is 180 s by default');

select is(private.callback_non_image(:'job', 1, 'task-1', 'result image 1 of 1 cannot be stored: not a PNG, JPEG or WebP image',
  '2030-01-01 00:01:00+00'), 'retry', 'the first delivery that finds no image starts the clock: the sender retries');
select is(private.callback_non_image(:'job', 1, 'task-1', 'result image 1 of 1 cannot be stored: not a PNG, JPEG or WebP image',
  '2030-01-01 00:03:59+00'), 'retry', 'one found within the grace is counted and retried');
select results_eq($$ select * from pg_temp.state((select job_id from jobs where n = 1)) $$,
  $$ values ('generating'::text, null::text, 'generating'::text, 2, 0) $$,
  'within the grace the job goes on, nothing refunded');
select matches((select last_error from private.job_pipeline where job_id = :'job'),
  'not a PNG, JPEG or WebP image; deliveries that found no image: 2, the first 179 s before this one',
  'last_error says what the deliveries found');

select is(private.callback_non_image(:'job', 1, 'task-1', 'result image 1 of 1 cannot be stored: not a PNG, JPEG or WebP image',
  '2030-01-01 00:04:00+00'), 'failed', 'one found when the grace has passed fails the job');
select results_eq(
  $$ select g.status, g.error_code, g.error_message, p.stage, p.retries, g.completed_at,
            (select count(*)::int from public.credit_ledger l where l.job_id = g.id and l.kind = 'refund')
       from public.generation_jobs g join private.job_pipeline p on p.job_id = g.id where g.id = (select job_id from jobs where n = 1) $$,
  $$ values ('failed'::text, 'provider_failed'::text, 'The image could not be generated.'::text, 'failed'::text, 0,
             '2030-01-01 00:04:00+00'::timestamptz, 1) $$,
  'failed as unusable: not retried, one refund, the generic message');
select matches((select last_error from private.job_pipeline where job_id = :'job'),
  '^task task-1 failed: unusable result image 1 of 1 cannot be stored: not a PNG, JPEG or WebP image; deliveries that found no image: 3, the first 180 s before this one',
  'the reason is kept for operators');
select is(private.callback_non_image(:'job', 1, 'task-1', 'result image 1 of 1 cannot be stored: not a PNG, JPEG or WebP image',
  '2030-01-01 00:05:00+00'), 'duplicate', 'a later delivery finds the job failed');
select is((select refunds from pg_temp.state(:'job')), 1, 'refunded exactly once');

-- The first delivery never fails the job, however long ago the job started, even with no grace.
update private.settings set value = '0' where key = 'results.non_image_grace_seconds';
select is(private.callback_non_image(:'job2', 1, 'task-2', 'result image 1 of 1 cannot be stored: not a PNG, JPEG or WebP image',
  '2030-01-01 00:10:00+00'), 'retry', 'with no grace the first delivery still only starts the clock');
select is(private.callback_non_image(:'job2', 1, 'task-2', 'result image 1 of 1 cannot be stored: not a PNG, JPEG or WebP image',
  '2030-01-01 00:10:00+00'), 'failed', 'and the next fails the job');

-- Another task's delivery, or another attempt's, counts for nothing.
select is(array[private.callback_non_image(:'job3', 1, 'task-other', 'not an image', '2030-01-01 00:01:00+00'),
                private.callback_non_image(:'job3', 1, 'task-other', 'not an image', '2030-01-01 00:02:00+00')],
  array['retry', 'retry'], 'a task that is not the job''s is only retried');
select results_eq($$ select * from pg_temp.state((select job_id from jobs where n = 3)) $$,
  $$ values ('generating'::text, null::text, 'generating'::text, 0, 0) $$,
  'and nothing is counted');

select * from finish();
rollback;
