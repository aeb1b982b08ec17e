-- Why: a result whose bytes are no image at all (most likely the result host's error page served
-- with 200) made the callback function answer 502 and record nothing. That is right for a passing
-- fault, since a later delivery may get the image; but a host that keeps serving the page kept the job
-- waiting: KIE retried the callback and the poll path sent a new finalize after every poll, each
-- downloading the page again, until the job's deadline (15 minutes by default), and only then did
-- the user get the refund.
--
-- The rule is bounded by time, not by a count: the first delivery of a task that finds non-image
-- bytes starts a clock, and a later delivery of that task that finds them again once
-- results.non_image_grace_seconds (180 s) have passed fails the job as the provider outcome
-- "unusable", like an image of another type: provider_failed with the outcome's message, exactly one
-- refund (private.fail_job), the reason in last_error. Until then each such delivery is only
-- counted and answered 502, so a passing error page still gets its retries. Time, because
-- deliveries come from two senders at unrelated paces (KIE's callback retries, the poll path's
-- finalize after every poll on poll.cadence, from every 3 s to every 30 s) and can arrive
-- together: a count of deliveries would mean seconds on one path and many minutes on the other, and
-- a burst of deliveries meeting one brief outage would use it up. How long the host has kept
-- serving something other than the image is what tells a blip from a fault, as
-- poll.not_found_grace_seconds does for "recordInfo is null". At least two deliveries always:
-- the one that starts the clock never fails the job. On the poll path a delivery follows every
-- poll (30 s apart by then), so such a job fails about three and a half minutes after the first
-- error page instead of at its deadline; a deadline that comes first still times it out.
--
-- The clock lives on the job's pipeline row beside its other counters (polls, unknown_outcomes)
-- and belongs to one task: a delivery of another task (a new attempt) starts it again. Columns
-- added without a volatile default: catalog only, under lock_timeout.

insert into private.setting_rules (key, shape, min_value, max_value, may_be_deleted) values
  ('results.non_image_grace_seconds', 'whole_number', 0, 3600, false)
on conflict (key) do nothing;
insert into private.settings (key, value, description) values
  ('results.non_image_grace_seconds', '180',
   'How long a task''s result may keep coming back as bytes that are no image at all (a result host''s error page) before '
   || 'the job fails as unusable with its refund: a delivery that finds them this many seconds or more after the first '
   || 'that did fails it; earlier ones are answered 502 so the sender retries. A whole number from 0 to 3600.')
on conflict (key) do nothing;

set lock_timeout = '5s';
alter table private.job_pipeline
  add column non_image_task text,
  add column non_image_since timestamptz,
  add column non_image_deliveries integer not null default 0;
reset lock_timeout;
comment on column private.job_pipeline.non_image_task is
  'The task whose result last came back as bytes that are no image at all (private.callback_non_image), or null.';
comment on column private.job_pipeline.non_image_since is
  'When the first delivery of non_image_task found non-image bytes: results.non_image_grace_seconds later such a delivery fails the job.';
comment on column private.job_pipeline.non_image_deliveries is
  'Deliveries of non_image_task that found non-image bytes.';

create function private.callback_non_image(job_id uuid, attempt integer, task_id text, reason text,
                                           at timestamptz default now())
returns text
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  p private.job_pipeline;
  grace numeric := coalesce(private.setting_number('results.non_image_grace_seconds'), 180);
  clean_reason text := coalesce(private.log_excerpt(reason, 300), 'a result is not an image');
  since timestamptz;
  deliveries integer;
  summary text;
begin
  if task_id is null or btrim(task_id) = '' or length(task_id) > 64 then
    perform private.raise_error('KL041', 'invalid result', 'task_id must be 1 to 64 characters', null);
  end if;
  -- Held until commit, as callback_complete and callback_fail hold it: deliveries of one job that
  -- arrive together are counted one after the other.
  select * into p from private.job_pipeline jp where jp.job_id = callback_non_image.job_id for update;
  if not found or p.stage in ('completed', 'failed') then
    return 'duplicate';
  end if;
  if attempt is null or attempt < 1 or attempt > p.attempt then
    perform private.raise_error('KL042', 'unknown attempt', format('job %s has attempts 1 to %s, got %s', job_id, p.attempt, attempt), null);
  end if;
  -- Only the current attempt's own task counts: an older attempt's delivery, or one whose task
  -- is not the job's, is retried as before and changes nothing.
  if p.stage = 'waiting' or p.attempt <> attempt or not private.is_job_task(job_id, attempt, task_id) then
    return 'retry';
  end if;
  if p.non_image_task is distinct from task_id or p.non_image_since is null then
    since := at;
    deliveries := 1;
  else
    since := p.non_image_since;
    deliveries := p.non_image_deliveries + 1;
  end if;
  summary := format('%s; deliveries that found no image: %s, the first %s s before this one', clean_reason, deliveries,
                    floor(extract(epoch from at - since))::bigint);
  update private.job_pipeline jp
     set non_image_task = callback_non_image.task_id, non_image_since = since, non_image_deliveries = deliveries,
         last_error = private.log_excerpt(summary, 500)
   where jp.job_id = callback_non_image.job_id;
  if deliveries > 1 and at >= since + make_interval(secs => grace::double precision) then
    perform private.fail_job(job_id, array[p.stage], p.attempt, 'provider_failed',
      (private.kie_outcome('task', 'task', 'unusable')).user_message,
      format('task %s failed: unusable %s (results.non_image_grace_seconds %s)', task_id, summary, grace), at);
    return 'failed';
  end if;
  return 'retry';
end
$$;
comment on function private.callback_non_image(uuid, integer, text, text, timestamptz) is
  'API: Private. Callback function: a delivery found a result that is no image at all (reason: which image, and why, never the URL). The first such delivery of the job''s current task starts a clock (job_pipeline.non_image_since, non_image_deliveries); a later one results.non_image_grace_seconds (180) or more after it fails the job as the provider outcome unusable: provider_failed, one refund, the reason in last_error. Answers failed (the job failed now), retry (counted, or not the current attempt''s task: the sender should retry) or duplicate (the job is finished or gone). KL041 for a blank task id, KL042 for an unknown attempt.';
revoke all on function private.callback_non_image(uuid, integer, text, text, timestamptz) from public;
grant execute on function private.callback_non_image(uuid, integer, text, text, timestamptz) to kiln_callback;

comment on role kiln_callback is
  'The kie-callback Edge Function''s login: of ours, executes the six callback functions in private and nothing else; '
  'like any login it also reaches pg_net''s PUBLIC grants (queued requests with their headers), so its password is as secret as the KIE key.';

select private.pin_search_paths();
