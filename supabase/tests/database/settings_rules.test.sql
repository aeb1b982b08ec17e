-- Every setting is checked when written (private.setting_rules): a value its rule does not allow,
-- a key without a rule, deleting a setting the pipeline needs, truncating, and a rule change that
-- would leave a stored value outside its rule are refused with KL053, and a refusal changes
-- nothing. The values the migrations and the local stack store pass their rules.
begin;
select plan(32);

select is((select count(*)::int from private.settings s where not exists (select from private.setting_rules r where r.key = s.key)), 0,
  'every setting has a rule');
select is((select count(*)::int from private.settings s join private.setting_rules r using (key)
            where private.setting_value_problem(r, s.value) is not null), 0,
  'every stored value passes its rule');

-- What a write gives: 'accepted' or the SQLSTATE of its refusal (the write is undone either way).
create function pg_temp.write(setting text, v jsonb) returns text language plpgsql as $$
begin
  begin
    update private.settings set value = v where key = setting;
    raise exception using errcode = 'U0001', message = 'accepted';
  exception when others then
    return case sqlstate when 'U0001' then 'accepted' else sqlstate end;
  end;
end
$$;

create temporary table cases (setting text, value jsonb, expected text) on commit drop;
insert into cases values
  -- Whole numbers: bounds, fractions, strings, null.
  ('jobs.deadline_seconds', '"15m"', 'KL053'),
  ('jobs.deadline_seconds', '29', 'KL053'),
  ('jobs.deadline_seconds', '30', 'accepted'),
  ('jobs.deadline_seconds', '86400', 'accepted'),
  ('jobs.deadline_seconds', '86401', 'KL053'),
  ('jobs.deadline_seconds', '900.5', 'KL053'),
  ('jobs.deadline_seconds', 'null', 'KL053'),
  ('dispatch.create_per_window', '0', 'KL053'),
  ('dispatch.create_per_window', '"18/10s"', 'KL053'),
  ('dispatch.create_per_window', '200', 'accepted'),
  ('dispatch.create_per_window', '201', 'KL053'),
  ('poll.per_window', '101', 'KL053'),
  ('kie.create_timeout_ms', '"8s"', 'KL053'),
  ('kie.create_timeout_ms', '8', 'KL053'),
  ('poll.first_after_seconds', '0', 'accepted'),
  ('housekeeping.request_log_retention_seconds', '"a month"', 'KL053'),
  ('housekeeping.net_response_retention_seconds', '604801', 'KL053'),
  -- The KIE base URL.
  ('kie.base_url', '"https://api.kie.ai /"', 'KL053'),
  ('kie.base_url', '"https://api.kie.ai/"', 'KL053'),
  ('kie.base_url', '"api.kie.ai"', 'KL053'),
  ('kie.base_url', '["https://api.kie.ai"]', 'KL053'),
  ('kie.base_url', '"http://127.0.0.1:54329"', 'accepted'),
  ('kie.base_url', '"https://proxy.example.com/kie"', 'accepted'),
  ('kie.base_url', '"http://127.0.0.1:99999"', 'KL053'),
  ('kie.base_url', '"http://127.0.0.1:0"', 'KL053'),
  ('kie.base_url', '"http://127.0.0.1:"', 'KL053'),
  ('kie.base_url', '"https://."', 'KL053'),
  ('kie.base_url', '"https://-kie-.example"', 'KL053'),
  ('kie.base_url', to_jsonb('https://api.kie.ai/' || repeat('a', 2030)), 'KL053'),
  -- A header value.
  ('kie.user_agent', '""', 'KL053'),
  ('kie.user_agent', to_jsonb(E'kiln\r\nX-Evil: 1'::text), 'KL053'),
  ('kie.user_agent', '"kiln/1.0 (+https://example.com)"', 'accepted'),
  -- Host lists, schemes and ports.
  ('images.allowed_hosts', '"img.test"', 'KL053'),
  ('images.allowed_hosts', '["img.test", 7]', 'KL053'),
  ('images.allowed_hosts', '["https://img.test/photos"]', 'KL053'),
  ('images.allowed_hosts', '["img test"]', 'KL053'),
  ('images.allowed_hosts', '[]', 'accepted'),
  ('images.allowed_hosts', '["*", "*.cdn.example.net", "Photos.Example.com", "http://127.0.0.1:54321"]', 'accepted'),
  ('images.allowed_hosts', '["*.test", "https://photos.example.com"]', 'accepted'),
  ('images.allowed_hosts', '["ftp://photos.example.com"]', 'KL053'),
  ('images.allowed_hosts', '["http://127.0.0.1:99999"]', 'KL053'),
  ('images.allowed_hosts', '["photos.example.com:8443"]', 'KL053'),
  ('images.allowed_hosts', '["*."]', 'KL053'),
  ('images.allowed_hosts', '["."]', 'KL053'),
  ('images.allowed_hosts', (select jsonb_agg('host' || g || '.example.com') from generate_series(1, 200) g), 'accepted'),
  ('images.allowed_hosts', (select jsonb_agg('host' || g || '.example.com') from generate_series(1, 201) g), 'KL053'),
  -- Entries the image URL check can never match: a zero-led port, private and dotless hosts.
  ('images.allowed_hosts', '["https://photos.example.com:08443"]', 'KL053'),
  ('images.allowed_hosts', '["localhost"]', 'KL053'),
  ('images.allowed_hosts', '["http://localhost:54321"]', 'KL053'),
  ('images.allowed_hosts', '["storage"]', 'KL053'),
  ('images.allowed_hosts', '["http://storage:5000"]', 'KL053'),
  ('images.allowed_hosts', '["*.internal"]', 'KL053'),
  ('images.allowed_hosts', '["photos.corp"]', 'KL053'),
  ('images.allowed_hosts', '["203.0.113.7", "https://203.0.113.7:8443"]', 'accepted'),
  ('images.allowed_hosts', '["*.1"]', 'KL053'),
  ('images.allowed_hosts', '["*.0x1f"]', 'KL053'),
  ('images.allowed_hosts', '["*.10.0.0.1"]', 'KL053'),
  ('images.allowed_hosts', '["*.10-0-0-1.nip.io"]', 'KL053'),
  ('images.allowed_hosts', '["*.nip.io", "*.1.example.com", "*.203.example"]', 'accepted'),
  -- Other hosts of this project's Storage: host names alone, ones the image URL check can reach.
  ('images.project_storage_hosts', '"api.example.com"', 'KL053'),
  ('images.project_storage_hosts', '[]', 'accepted'),
  ('images.project_storage_hosts', '["api.example.com", "CDN.Example.net", "203.0.113.7"]', 'accepted'),
  ('images.project_storage_hosts', '["https://api.example.com"]', 'KL053'),
  ('images.project_storage_hosts', '["api.example.com:443"]', 'KL053'),
  ('images.project_storage_hosts', '["*.example.com"]', 'KL053'),
  ('images.project_storage_hosts', '["*"]', 'KL053'),
  ('images.project_storage_hosts', '["api.example.com/storage/v1"]', 'KL053'),
  ('images.project_storage_hosts', '["api.example.com."]', 'KL053'),
  ('images.project_storage_hosts', '["storage"]', 'KL053'),
  ('images.project_storage_hosts', '["storage.internal"]', 'KL053'),
  ('images.project_storage_hosts', '["localhost"]', 'KL053'),
  ('images.project_storage_hosts', '[7]', 'KL053'),
  ('images.project_storage_hosts', (select jsonb_agg('cdn' || g || '.example.com') from generate_series(1, 201) g), 'KL053'),
  ('results.allowed_hosts', '"kie.test"', 'KL053'),
  ('results.allowed_hosts', '["*.kie.test"]', 'KL053'),
  ('results.allowed_hosts', '["ftp://kie.test"]', 'KL053'),
  ('results.allowed_hosts', '["http://127.0.0.1:0"]', 'KL053'),
  ('results.allowed_hosts', '["https://files.kie.test:65536"]', 'KL053'),
  ('results.allowed_hosts', '["https://files.kie.test:8443"]', 'accepted'),
  ('results.allowed_hosts', '["tempfile.aiquickdraw.com", "http://127.0.0.1:18100"]', 'accepted'),
  -- Host entries the result URL check refuses before it reads the list; as origins they work.
  ('results.allowed_hosts', '["https://files.kie.test:08443"]', 'KL053'),
  ('results.allowed_hosts', '["localhost"]', 'KL053'),
  ('results.allowed_hosts', '["files.internal"]', 'KL053'),
  ('results.allowed_hosts', '["203.0.113.7"]', 'KL053'),
  ('results.allowed_hosts', '["127-0-0-1.nip.io"]', 'KL053'),
  ('results.allowed_hosts', '["http://localhost:54329", "https://203.0.113.7", "kie"]', 'accepted'),
  ('kie.base_url', '"https://api.kie.ai:0443"', 'KL053'),
  ('images.allowed_schemes', '["https", "ftp"]', 'KL053'),
  ('images.allowed_schemes', '["HTTPS"]', 'KL053'),
  ('images.allowed_schemes', '["http", "https"]', 'accepted'),
  ('images.allowed_ports', '[443, 0]', 'KL053'),
  ('images.allowed_ports', '[65536]', 'KL053'),
  ('images.allowed_ports', '["443"]', 'KL053'),
  ('images.allowed_ports', '[443, 8443]', 'accepted'),
  -- The poll cadence: rising until_seconds, the last one null.
  ('poll.cadence', '[{"every_seconds": 3, "until_seconds": 30}, {"every_seconds": 10, "until_seconds": 120}]', 'KL053'),
  ('poll.cadence', '[{"every_seconds": 3, "until_seconds": null}, {"every_seconds": 10, "until_seconds": null}]', 'KL053'),
  ('poll.cadence', '[{"every_seconds": 3, "until_seconds": 30}, {"every_seconds": 10, "until_seconds": 30}, {"every_seconds": 30, "until_seconds": null}]', 'KL053'),
  ('poll.cadence', '[{"every_seconds": 0, "until_seconds": null}]', 'KL053'),
  ('poll.cadence', '[{"every_seconds": 3, "until": null}]', 'KL053'),
  ('poll.cadence', '[{"every_seconds": 3, "until_seconds": null, "extra": 1}]', 'KL053'),
  ('poll.cadence', '[]', 'KL053'),
  ('poll.cadence', '[{"every_seconds": 2.5, "until_seconds": null}]', 'KL053'),
  ('poll.cadence', '{"every_seconds": 3, "until_seconds": null}', 'KL053'),
  ('poll.cadence', '[{"every_seconds": 5, "until_seconds": null}]', 'accepted'),
  ('poll.cadence', '[{"every_seconds": 2, "until_seconds": 20}, {"every_seconds": 15, "until_seconds": null}]', 'accepted');

select is((select string_agg(format('%s = %s: %s', setting, value, got), '; ')
             from (select c.*, pg_temp.write(c.setting, c.value) as got from cases c) w
            where got is distinct from expected),
  null::text, 'each value is accepted or refused with KL053 as its rule says');

select throws_ok($$ update private.settings set value = '"15m"' where key = 'jobs.deadline_seconds' $$,
  'KL053', 'invalid setting', 'a refusal names the code');
select is(private.setting('jobs.deadline_seconds'), '900'::jsonb, 'and changes nothing');

-- The message says what the value must be.
create function pg_temp.detail_of(statement text) returns text language plpgsql as $$
declare
  detail text;
begin
  execute statement;
  return null;
exception when others then
  get stacked diagnostics detail = pg_exception_detail;
  return detail;
end
$$;
select is(pg_temp.detail_of($$ update private.settings set value = '0' where key = 'dispatch.create_per_window' $$),
  'dispatch.create_per_window must be a whole number from 1 to 200, got 0', 'the detail names the setting, its bounds and the value');
select is(pg_temp.detail_of($$ update private.settings set value = '[{"every_seconds": 3, "until_seconds": 30}]' where key = 'poll.cadence' $$),
  'poll.cadence the last entry must have until_seconds null (the interval for tasks older than every other entry), got [{"every_seconds": 3, "until_seconds": 30}]',
  'and what a shape needs');
select is(pg_temp.detail_of($$ update private.settings set value = '["img.test", "localhost"]' where key = 'images.allowed_hosts' $$),
  'images.allowed_hosts has an entry that names a private network host, which the image URL check refuses even when listed: "localhost", got ["img.test", "localhost"]',
  'and why a list entry could never match');

select is(pg_temp.detail_of($$ update private.settings set value = '["https://api.example.com"]' where key = 'images.project_storage_hosts' $$),
  'images.project_storage_hosts has an entry that is not a host name alone (no scheme, port, path or wildcard): "https://api.example.com", got ["https://api.example.com"]',
  'and that a Storage host is named by its host alone');

-- Unknown keys and deletions.
select throws_ok($$ insert into private.settings (key, value, description) values ('jobs.deadline_second', '900', 'typo') $$,
  'KL053', 'invalid setting', 'a key without a rule cannot be inserted');
select throws_ok($$ delete from private.settings where key = 'jobs.deadline_seconds' $$,
  'KL053', 'invalid setting', 'a setting the pipeline needs cannot be deleted');
-- Renamed to a key that has a rule and takes the value (its own row deleted first): only the
-- rename itself is refused.
delete from private.settings where key = 'uploads.walk_per_run';
select throws_ok($$ update private.settings set key = 'uploads.walk_per_run' where key = 'jobs.deadline_seconds' $$,
  'KL053', 'invalid setting', 'nor renamed away');
select is((select count(*)::int from private.settings where key = 'jobs.deadline_seconds'), 1, 'it is still there');
select lives_ok($$ delete from private.settings where key = 'storage.purge_alert_after_seconds' $$,
  'a setting with a default may be deleted');
select lives_ok($$ insert into private.settings (key, value, description) values ('storage.purge_alert_after_seconds', '1800', 'put back') $$,
  'and inserted again, its value checked');
select throws_ok($$ insert into private.settings (key, value, description) values ('storage.purge_alert_after_seconds', '59', 'x')
                    on conflict (key) do update set value = excluded.value $$,
  'KL053', 'invalid setting', 'an upsert is checked too');

-- Around the row checks: truncating, and changing the rules under stored values.
select throws_ok($$ truncate private.settings $$, 'KL053', 'invalid setting', 'the settings cannot be truncated');
select throws_ok($$ truncate private.setting_rules $$, 'KL053', 'invalid setting', 'nor their rules');
select throws_ok($$ delete from private.setting_rules where key = 'jobs.deadline_seconds' $$,
  'KL053', 'invalid setting', 'the rule of a stored setting cannot be deleted');
select throws_ok($$ update private.setting_rules set max_value = 600 where key = 'jobs.deadline_seconds' $$,
  'KL053', 'invalid setting', 'nor changed so that the stored value (900) breaks it');
select lives_ok($$ update private.setting_rules set max_value = 7200 where key = 'jobs.deadline_seconds' $$,
  'a change the stored value still meets is allowed');
select is((select (r.min_value, r.max_value)::text from private.setting_rules r where r.key = 'jobs.deadline_seconds'), '(30,7200)',
  'and the refused changes changed nothing');

select throws_ok($$ update private.setting_rules set key = 'jobs.deadline_secs' where key = 'jobs.deadline_seconds' $$,
  'KL053', 'invalid setting', 'nor renamed');

-- A rule that may not be deleted needs its setting by commit (checked at commit: set immediate
-- here, as the test never commits).
set constraints private.setting_rules_required_have_a_value immediate;
-- A change of shape, which no value survives, by the hint's recipe, on a setting the pipeline
-- needs: may_be_deleted on, the setting out, the rule changed, the new value in, may_be_deleted off.
select lives_ok($$
  update private.setting_rules set may_be_deleted = true where key = 'dispatch.batch_size';
  delete from private.settings where key = 'dispatch.batch_size';
  update private.setting_rules set shape = 'ports', min_value = null, max_value = null where key = 'dispatch.batch_size';
  insert into private.settings (key, value, description) values ('dispatch.batch_size', '[443]', 'new shape');
  update private.setting_rules set may_be_deleted = false where key = 'dispatch.batch_size' $$,
  'a change of shape works by the recipe the refusal hints');
select is((select value from private.settings where key = 'dispatch.batch_size'), '[443]'::jsonb, 'and leaves the new value');

select throws_ok($$ insert into private.setting_rules (key, shape, min_value, max_value, may_be_deleted)
                    values ('test.required', 'whole_number', 0, 10, false) $$,
  'KL053', 'invalid setting', 'a required rule without its setting is refused');
delete from private.settings where key = 'storage.purge_alert_after_seconds';
select throws_ok($$ update private.setting_rules set may_be_deleted = false where key = 'storage.purge_alert_after_seconds' $$,
  'KL053', 'invalid setting', 'and so is making a rule required while its setting is missing');
-- The setting deleted first, its rule may go.
select lives_ok($$ delete from private.setting_rules where key = 'storage.purge_alert_after_seconds' $$,
  'the rule of a deleted setting may be deleted');
set constraints private.setting_rules_required_have_a_value deferred;
insert into private.setting_rules (key, shape, min_value, max_value, may_be_deleted) values ('test.required', 'whole_number', 0, 10, false);
insert into private.settings (key, value, description) values ('test.required', '5', 'added with its rule');
select lives_ok($$ set constraints private.setting_rules_required_have_a_value immediate $$,
  'a required rule and its setting inserted in one transaction pass at commit');

-- What the checks protect: a start reads these settings in its own transaction.
select tests.create_supabase_user('sr_user') as uid \gset
select public.grant_credits(:'uid', 10, 'test credits') as granted \gset
select tests.authenticate_as('sr_user');
select lives_ok($$ select public.start_generation(prompt => 'a red fox') $$, 'a start works with the stored settings');
select tests.act_as_owner();

-- The rules table is the owner's only.
select is((select count(*)::int from information_schema.role_table_grants
            where table_schema = 'private' and table_name = 'setting_rules' and grantee in ('anon', 'authenticated', 'service_role', 'PUBLIC')), 0,
  'the API roles have no grant on the rules');
select ok((select relrowsecurity from pg_class where oid = 'private.setting_rules'::regclass), 'and RLS is on');

select * from finish();
rollback;
