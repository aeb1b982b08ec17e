-- results.allowed_hosts: which result URLs the callback function may download, checked where a
-- report is read (private.interpret_task_report) through private.result_url_problem.
begin;
select plan(14);

update private.settings set value = '["files.kie.test", "http://127.0.0.1:18100"]' where key = 'results.allowed_hosts';

select is(private.result_url_problem('https://files.kie.test/r/a.png'), null, 'a listed host over https');
select is(private.result_url_problem('HTTPS://FILES.KIE.TEST:443/r/a.png?sig=1'), null, 'case and the default port do not matter');
select is(private.result_url_problem('http://127.0.0.1:18100/files/a.png'), null, 'an exact origin, the only way to an IP address');
select isnt(private.result_url_problem('http://127.0.0.1:18101/files/a.png'), null, 'another port of a listed origin');
select isnt(private.result_url_problem('http://files.kie.test/r/a.png'), null, 'a listed host over plain http');
select isnt(private.result_url_problem('https://files.kie.test:8443/r/a.png'), null, 'a listed host on another port');
select isnt(private.result_url_problem('https://evil.test/r/a.png'), null, 'a host not listed');
select isnt(private.result_url_problem('https://files.kie.test.evil.test/a.png'), null, 'a listed host as a prefix');
select isnt(private.result_url_problem('https://169.254.169.254/latest/meta-data'), null, 'the metadata address');
select isnt(private.result_url_problem('https://files.kie.test@127.0.0.1/a.png'), null, 'user info');
select isnt(private.result_url_problem('https://files.kie.test\@evil.test/a.png'), null, 'a backslash');

select results_eq(
  $$ select kind, fail_code, fail_message, result_urls from private.interpret_task_report(
       '{"code": 200, "data": {"taskId": "t1", "state": "success", "resultJson": "{\"resultUrls\": [\"https://files.kie.test/a.png\", \"http://127.0.0.1:9/\"]}"}}') $$,
  $$ values ('failed'::text, 'unusable'::text,
             'result URL 2 of 2 is not on an accepted result host (results.allowed_hosts): only https on port 443 is accepted (host 127.0.0.1:9)'::text,
             null::text[]) $$,
  'one URL off the list makes the whole report an unusable result: nothing is downloaded');
select results_eq(
  $$ select kind, result_urls from private.interpret_task_report(
       '{"code": 200, "data": {"taskId": "t1", "state": "success", "resultJson": "{\"resultUrls\": [\"https://files.kie.test/a.png\"]}"}}') $$,
  $$ values ('success'::text, array['https://files.kie.test/a.png']) $$,
  'URLs on the list are read as a success');

update private.settings set value = '[]' where key = 'results.allowed_hosts';
select isnt(private.result_url_problem('https://files.kie.test/r/a.png'), null, 'an empty list accepts nothing');

select * from finish();
rollback;
