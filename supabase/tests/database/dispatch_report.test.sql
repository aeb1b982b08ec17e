-- One reading of KIE: interpret_task_report reads recordInfo replies and callback bodies in
-- every variant kie-api.md lists.
begin;
select plan(17);

select is(
  (select format('%s|%s|%s|%s|%s|%s', r.kind, coalesce(r.task_id, '-'), coalesce(array_to_string(r.result_urls, ','), '-'),
                 coalesce(r.fail_code, '-'), coalesce(r.fail_message, '-'), coalesce(r.credits_consumed::text, '-'))
     from private.interpret_task_report(c.report::jsonb) r),
  c.expected, c.label)
from (values
  ('recordInfo success, resultJson as a string',
   '{"code": 200, "msg": "success", "data": {"taskId": "t1", "state": "success", "resultJson": "{\"resultUrls\":[\"https://kie.test/a.png\"]}", "failCode": "", "creditsConsumed": 4}}',
   'success|t1|https://kie.test/a.png|-|-|4'),
  ('callback success without state, resultJson as an object, task_id, consumeCredits as a string',
   '{"code": 200, "msg": "ok", "data": {"task_id": "t2", "resultJson": {"resultUrls": ["https://kie.test/a.png", "https://kie.test/a.png", "https://kie.test/b.png"]}, "consumeCredits": "2.5"}}',
   'success|t2|https://kie.test/a.png,https://kie.test/b.png|-|-|2.5'),
  ('code as a string',
   '{"code": "200", "data": {"taskId": "t3", "state": "SUCCESS", "resultJson": "{\"resultUrls\":\"https://kie.test/c.png\"}"}}',
   'success|t3|https://kie.test/c.png|-|-|-'),
  ('callback failure 501 with failCode and failMsg',
   '{"code": 501, "msg": "failed", "data": {"taskId": "t4", "failCode": "400", "failMsg": "content policy"}}',
   'failed|t4|-|400|content policy|-'),
  ('state fail, failMsg missing: msg is used',
   '{"code": 200, "message": "moderation", "data": {"taskId": "t5", "state": "fail", "failCode": 422}}',
   'failed|t5|-|422|moderation|-'),
  ('still running',
   '{"code": 200, "data": {"taskId": "t6", "state": "generating"}}',
   'running|t6|-|-|-|-'),
  ('an unknown future state counts as running',
   '{"code": 200, "data": {"taskId": "t7", "state": "postprocessing"}}',
   'running|t7|-|-|-|-'),
  ('success without a usable URL',
   '{"code": 200, "data": {"taskId": "t8", "state": "success", "resultJson": "{\"resultUrls\":[\"ftp://x\", 5]}"}}',
   'failed|t8|-|unusable|KIE reported success but resultJson has no http(s) result URL|-'),
  ('success with malformed resultJson',
   '{"code": 200, "data": {"taskId": "t9", "state": "success", "resultJson": "{not json"}}',
   'failed|t9|-|unusable|KIE reported success but resultJson is not a JSON object|-'),
  ('recordInfo is null',
   '{"code": 422, "msg": "recordInfo is null", "data": null}',
   'unreadable|-|-|-|-|-'),
  ('no task id',
   '{"code": 200, "data": {"state": "success"}}',
   'unreadable|-|-|-|-|-'),
  ('taskId and task_id disagree',
   '{"code": 200, "data": {"taskId": "a", "task_id": "b", "state": "success"}}',
   'unreadable|-|-|-|-|-'),
  ('a task id over 64 characters',
   '{"code": 200, "data": {"taskId": "' || repeat('x', 65) || '", "state": "success"}}',
   'unreadable|-|-|-|-|-'),
  ('not an object', '[1, 2]', 'unreadable|-|-|-|-|-'),
  ('no code', '{"data": {"taskId": "t1"}}', 'unreadable|-|-|-|-|-')
) as c (label, report, expected);

select is((select body_code from private.interpret_task_report('{"code": 422, "msg": "recordInfo is null"}')), 422,
  'an unreadable report still carries its body code for the caller');
select is((select message from private.interpret_task_report('{"code": 455, "message": "maintenance"}')), 'maintenance',
  'message is read when msg is missing');

select * from finish();
rollback;
