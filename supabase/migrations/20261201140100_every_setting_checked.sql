-- Why: only four settings were checked when written. A typo in any other one broke the pipeline,
-- often for everyone and with a raw error: jobs.deadline_seconds = '"15m"' or a deleted row made
-- every start_generation fail (the insert trigger reads it), images.allowed_hosts = '"img.test"'
-- (a string, not an array) every image start, results.allowed_hosts the same way every result
-- report. Others stopped it silently: dispatch.create_per_window = 0 sent nothing and raised no
-- alert, values above the budget caps were cut without a word, and a poll.cadence without a last
-- open-ended entry stopped polling old tasks.
--
-- - private.setting_rules says what each setting's value must be: a whole number within bounds,
--   or one of a few shapes (a base URL, a header text, host lists, schemes, ports, the poll
--   cadence). One trigger checks every insert and update against it and refuses a bad value with
--   KL053, naming the setting and what it must be; nothing changes.
-- - A setting without a rule cannot be inserted (a misspelt key would do nothing), and a setting
--   the pipeline cannot run without cannot be deleted. Three may be: uploads.retention_days
--   (nothing expires), storage.purge_alert_after_seconds and uploads.walk_per_run (defaults).
-- - This migration stops if a value already stored breaks its rule: fix it, then deploy again.

create table private.setting_rules (
  key text primary key,
  shape text not null constraint setting_rules_shape_known check (shape in
    ('whole_number', 'http_base_url', 'header_text', 'image_hosts', 'result_hosts', 'url_schemes', 'ports', 'poll_cadence')),
  min_value numeric,
  max_value numeric,
  may_be_deleted boolean not null default false,
  constraint setting_rules_bounds_for_numbers check (
    (shape = 'whole_number') = (min_value is not null and max_value is not null) and min_value <= max_value)
);
comment on table private.setting_rules is
  'API: Private. What each private.settings value must be; the settings_values_valid trigger refuses (KL053) anything else, a key without a rule, and deleting a setting that may not be deleted.';
comment on column private.setting_rules.shape is
  'whole_number (min_value to max_value); http_base_url (http(s)://host[:port][/path], no trailing slash); header_text (1 to 200 printable ASCII characters); image_hosts (array of host, *.suffix, * or scheme://host[:port]); result_hosts (array of host or http(s)://host[:port]); url_schemes (array of "http", "https"); ports (array of whole numbers 1 to 65535); poll_cadence (array of {every_seconds, until_seconds}, until_seconds rising, the last one null).';
comment on column private.setting_rules.may_be_deleted is
  'Whether the row may be deleted: its readers have a meaning for a missing row (a default, or the feature off).';
alter table private.setting_rules enable row level security;
revoke all on private.setting_rules from public;

-- Bounds: wide enough for every sensible value and the local stack's tests (a 30 s deadline, a
-- 1 s lost-request wait, a 500 ms timeout, an immediate first poll), narrow enough that a unit
-- mix-up (ms for s, days for seconds) or a zero that stops a stage is refused.
insert into private.setting_rules (key, shape, min_value, max_value, may_be_deleted) values
  ('account.low_balance_threshold',               'whole_number', 0, 100000000, false),
  ('deadline.final_grace_seconds',                'whole_number', 0, 3600, false),
  ('dispatch.batch_size',                         'whole_number', 1, 1000, false),
  -- KIE's limit is 20 per 10 s; the rate slots hold at most 200 tokens.
  ('dispatch.create_per_window',                  'whole_number', 1, 200, false),
  ('dispatch.create_window_seconds',              'whole_number', 1, 3600, false),
  ('finalize.retry_seconds',                      'whole_number', 1, 3600, false),
  ('housekeeping.cron_history_retention_seconds', 'whole_number', 3600, 31536000, false),
  -- The Storage purges read the answer to their last request up to 50 minutes later.
  ('housekeeping.net_response_retention_seconds', 'whole_number', 3600, 604800, false),
  -- Longer than the longest job (deadline up to a day, plus the final grace): the callback needs its
  -- create request's row while the job runs.
  ('housekeeping.request_log_retention_seconds',  'whole_number', 172800, 31536000, false),
  ('jobs.deadline_seconds',                       'whole_number', 30, 86400, false),
  ('kie.create_timeout_ms',                       'whole_number', 100, 60000, false),
  ('kie.poll_timeout_ms',                         'whole_number', 100, 60000, false),
  ('kie.finalize_timeout_ms',                     'whole_number', 100, 120000, false),
  ('poll.first_after_seconds',                    'whole_number', 0, 3600, false),
  ('poll.not_found_grace_seconds',                'whole_number', 0, 3600, false),
  -- KIE's limit is 10 per s; the rate slots hold at most 100 tokens.
  ('poll.per_window',                             'whole_number', 1, 100, false),
  ('poll.window_seconds',                         'whole_number', 1, 3600, false),
  ('reconcile.batch_size',                        'whole_number', 1, 10000, false),
  ('reconcile.lost_after_seconds',                'whole_number', 1, 3600, false),
  ('retry.base_seconds',                          'whole_number', 1, 3600, false),
  ('retry.cap_seconds',                           'whole_number', 1, 86400, false),
  ('retry.max_attempts',                          'whole_number', 1, 20, false),
  -- Up to a week, GoTrue's longest JWT expiry.
  ('storage.deleted_account_watch_seconds',       'whole_number', 0, 604800, false),
  ('storage.purge_alert_after_seconds',           'whole_number', 60, 604800, true),
  ('uploads.retention_days',                      'whole_number', 1, 3650, true),
  -- 100 names: a million uploads a week; 20,000: about a second a run.
  ('uploads.walk_per_run',                        'whole_number', 100, 20000, true),
  ('kie.base_url',                                'http_base_url', null, null, false),
  ('kie.user_agent',                              'header_text', null, null, false),
  ('images.allowed_hosts',                        'image_hosts', null, null, false),
  ('images.allowed_schemes',                      'url_schemes', null, null, false),
  ('images.allowed_ports',                        'ports', null, null, false),
  ('results.allowed_hosts',                       'result_hosts', null, null, false),
  ('poll.cadence',                                'poll_cadence', null, null, false);

-- What is wrong with a value under a rule, or null when it is fine.
create function private.setting_value_problem(rule private.setting_rules, value jsonb)
returns text
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  entry jsonb;
  previous_until numeric;
  position integer := 0;
begin
  case rule.shape
    when 'whole_number' then
      if jsonb_typeof(value) is distinct from 'number' or (value #>> '{}')::numeric not between rule.min_value and rule.max_value
         or (value #>> '{}')::numeric <> trunc((value #>> '{}')::numeric) then
        return format('must be a whole number from %s to %s', rule.min_value, rule.max_value);
      end if;
    when 'http_base_url' then
      if jsonb_typeof(value) is distinct from 'string' or length(value #>> '{}') > 2048
         or (value #>> '{}') !~ '^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~-]+)*$' then
        return 'must be a string http(s)://host[:port][/path], without a trailing slash';
      end if;
    when 'header_text' then
      if jsonb_typeof(value) is distinct from 'string' or (value #>> '{}') !~ '^[ -~]{1,200}$' then
        return 'must be a string of 1 to 200 printable ASCII characters';
      end if;
    when 'image_hosts', 'result_hosts', 'url_schemes', 'ports' then
      if jsonb_typeof(value) is distinct from 'array' or jsonb_array_length(value) > 200 then
        return 'must be a JSON array (at most 200 entries)';
      end if;
      for entry in select e from jsonb_array_elements(value) e loop
        if not (case rule.shape
                 when 'ports' then jsonb_typeof(entry) = 'number' and (entry #>> '{}')::numeric between 1 and 65535
                                   and (entry #>> '{}')::numeric = trunc((entry #>> '{}')::numeric)
                 when 'url_schemes' then entry in ('"http"', '"https"')
                 when 'image_hosts' then jsonb_typeof(entry) = 'string' and length(entry #>> '{}') <= 253
                   and lower(entry #>> '{}') ~ '^(\*|\*\.[a-z0-9-]+(\.[a-z0-9-]+)+|[a-z0-9-]+(\.[a-z0-9-]+)*|[a-z][a-z0-9+.-]*://[a-z0-9.-]+(:[0-9]{1,5})?)$'
                 else jsonb_typeof(entry) = 'string' and length(entry #>> '{}') <= 253
                   and lower(entry #>> '{}') ~ '^([a-z0-9-]+(\.[a-z0-9-]+)*|https?://[a-z0-9.-]+(:[0-9]{1,5})?)$'
               end) then
          return format('has an entry that is not %s: %s',
            case rule.shape when 'ports' then 'a port (a whole number from 1 to 65535)'
                            when 'url_schemes' then '"http" or "https"'
                            when 'image_hosts' then 'a host name, *.suffix, * or scheme://host[:port]'
                            else 'a host name or http(s)://host[:port]' end,
            left(entry::text, 100));
        end if;
      end loop;
    when 'poll_cadence' then
      if jsonb_typeof(value) is distinct from 'array' or jsonb_array_length(value) not between 1 and 20 then
        return 'must be a JSON array of 1 to 20 {"every_seconds", "until_seconds"} entries';
      end if;
      for entry in select e from jsonb_array_elements(value) e loop
        position := position + 1;
        if jsonb_typeof(entry) is distinct from 'object'
           or (select array_agg(k order by k) from jsonb_object_keys(entry) k) is distinct from array['every_seconds', 'until_seconds']
           or jsonb_typeof(entry -> 'every_seconds') is distinct from 'number'
           or (entry ->> 'every_seconds')::numeric not between 1 and 3600
           or (entry ->> 'every_seconds')::numeric <> trunc((entry ->> 'every_seconds')::numeric)
           or jsonb_typeof(entry -> 'until_seconds') not in ('number', 'null') then
          return format('entry %s must be {"every_seconds": 1 to 3600, "until_seconds": seconds or null}', position);
        end if;
        if jsonb_typeof(entry -> 'until_seconds') = 'null' then
          if position < jsonb_array_length(value) then
            return format('entry %s has until_seconds null but is not the last', position);
          end if;
        elsif (entry ->> 'until_seconds')::numeric <= coalesce(previous_until, 0) then
          return format('entry %s: until_seconds must rise from one entry to the next', position);
        else
          previous_until := (entry ->> 'until_seconds')::numeric;
        end if;
      end loop;
      if jsonb_typeof(value -> -1 -> 'until_seconds') <> 'null' then
        return 'the last entry must have until_seconds null (the interval for tasks older than every other entry)';
      end if;
  end case;
  return null;
end
$$;
comment on function private.setting_value_problem(private.setting_rules, jsonb) is
  'API: Private. What is wrong with a settings value under its rule (private.setting_rules), or null when it is fine.';

create function private.check_setting()
returns trigger
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  rule private.setting_rules;
  problem text;
  gone text;
begin
  -- A row that goes away (deleted, or renamed by an update) must be one that may.
  if tg_op = 'DELETE' then
    gone := old.key;
  elsif tg_op = 'UPDATE' then
    gone := nullif(old.key, new.key);
  end if;
  if not coalesce((select r.may_be_deleted from private.setting_rules r where r.key = gone), true) then
    perform private.raise_error('KL053', 'invalid setting',
      format('%s may not be deleted: the pipeline reads it on every run', gone),
      'Set another value with update private.settings set value = ... instead.');
  end if;
  if tg_op = 'DELETE' then
    return old;
  end if;
  select * into rule from private.setting_rules r where r.key = new.key;
  if not found then
    perform private.raise_error('KL053', 'invalid setting',
      format('unknown setting %s', left(new.key, 100)),
      'A new setting needs its rule in private.setting_rules first (a migration adds both).');
  end if;
  problem := private.setting_value_problem(rule, new.value);
  if problem is not null then
    perform private.raise_error('KL053', 'invalid setting',
      format('%s %s, got %s', new.key, problem, left(new.value::text, 100)), null);
  end if;
  return new;
end
$$;
comment on function private.check_setting() is
  'API: Private. Trigger: refuses (KL053) a settings value its rule in private.setting_rules does not allow, a key without a rule, and deleting (or renaming) a setting whose rule does not allow it.';

-- One check for every setting replaces the storage settings' own.
drop trigger settings_storage_values_valid on private.settings;
drop function private.check_storage_setting();
create trigger settings_values_valid before insert or update or delete on private.settings
  for each row execute function private.check_setting();

-- Values stored before this migration: stop here, naming them, if any breaks its rule.
do $$
declare
  broken text;
begin
  select string_agg(format('%s = %s (%s)', s.key, left(s.value::text, 100),
                           coalesce(private.setting_value_problem(r, s.value), 'no rule')), '; ' order by s.key)
    into broken
    from private.settings s
    left join private.setting_rules r on r.key = s.key
   where r.key is null or private.setting_value_problem(r, s.value) is not null;
  if broken is not null then
    perform private.raise_error('KL053', 'invalid setting',
      'settings stored before this migration break their rules: ' || broken,
      'Fix them with update private.settings, then apply the migration again.');
  end if;
end
$$;

comment on table private.settings is
  'API: Private. Operator tunables, one row per key, value as jsonb. Change with update; read with private.setting(key). Every value is checked against private.setting_rules (KL053).';

select private.pin_search_paths();
