-- Why: a settings write and a change of its rule, made at the same time, each passed its own check
-- (20261201140100, 20261201150300) against the other's table as it was before, and could leave a
-- stored value its rule forbids: with jobs.deadline_seconds at 500, one transaction lowering the
-- rule's max_value to 600 and another setting 1200 both committed. In the same way a setting
-- could be inserted while its rule was being deleted, and stay without a rule.
--
-- The settings trigger now reads the rule with `for share`: a rule change in flight makes the
-- settings write wait and then check against the rule as committed; a settings write in flight
-- makes the rule change wait (update and delete conflict with the share lock), and the rule
-- trigger then reads the value as committed. That last read needs read committed (the default):
-- under repeatable read or serializable the rule trigger would still read its snapshot from
-- before the wait, so a rule change is refused at those levels. (A settings write at those levels
-- that meets a concurrent rule change fails with a serialization error and changes nothing. Two
-- transactions that each change both a rule and its setting may deadlock: one is refused.)
--
-- Also: a rule that may not be deleted could be inserted, or have may_be_deleted turned off, with
-- no setting stored under its key, and every reader of that setting then failed. That is now
-- checked at commit (a deferred constraint trigger), so a migration can still insert a new rule
-- and then its setting in the same transaction.

create or replace function private.check_setting()
returns trigger
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  rule private.setting_rules;
  problem text;
  gone text;
  may_be_deleted boolean;
begin
  -- A row that goes away (deleted, or renamed by an update) must be one that may.
  if tg_op = 'DELETE' then
    gone := old.key;
  elsif tg_op = 'UPDATE' then
    gone := nullif(old.key, new.key);
  end if;
  if gone is not null then
    select r.may_be_deleted into may_be_deleted from private.setting_rules r where r.key = gone for share;
    if not coalesce(may_be_deleted, true) then
      perform private.raise_error('KL053', 'invalid setting',
        format('%s may not be deleted: the pipeline reads it on every run', gone),
        'Set another value with update private.settings set value = ... instead.');
    end if;
  end if;
  if tg_op = 'DELETE' then
    return old;
  end if;
  select * into rule from private.setting_rules r where r.key = new.key for share;
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
  'API: Private. Trigger: refuses (KL053) a settings value its rule in private.setting_rules does not allow, a key without a rule, and deleting (or renaming) a setting whose rule does not allow it. It reads the rule with for share, so a concurrent rule change waits for it or it for the rule change.';

-- The rule trigger's hint for a value that breaks the changed rule: "change the value first" does
-- not work when no value fits both the old and the new rule (a change of shape).
create or replace function private.check_setting_rule()
returns trigger
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  stored jsonb;
  problem text;
begin
  if tg_op = 'TRUNCATE' then
    perform private.raise_error('KL053', 'invalid setting',
      format('%s cannot be truncated: the pipeline reads every setting on every run', tg_table_name),
      'Change one row at a time with update.');
  end if;
  -- Only read committed sees a settings write it waited for (see the header).
  if current_setting('transaction_isolation') <> 'read committed' then
    perform private.raise_error('KL053', 'invalid setting',
      format('setting rules are changed under read committed only, not %s', current_setting('transaction_isolation')),
      'Run the change in a read committed transaction (the default).');
  end if;
  if tg_op in ('DELETE', 'UPDATE') and (tg_op = 'DELETE' or new.key <> old.key)
     and exists (select 1 from private.settings s where s.key = old.key) then
    perform private.raise_error('KL053', 'invalid setting',
      format('the rule of %s cannot be deleted or renamed while the setting exists', old.key),
      'Delete the setting first (if its rule allows it), or change the rule in place.');
  end if;
  if tg_op = 'DELETE' then
    return old;
  end if;
  select s.value into stored from private.settings s where s.key = new.key;
  if found then
    problem := private.setting_value_problem(new, stored);
    if problem is not null then
      perform private.raise_error('KL053', 'invalid setting',
        format('the stored value of %s would break the changed rule: it %s, got %s', new.key, problem, left(stored::text, 100)),
        'Change the value first, then the rule. If no value fits both rules, in one transaction: set may_be_deleted on the rule, '
        || 'delete the setting, change the rule, insert the new value, then reset may_be_deleted.');
    end if;
  end if;
  return new;
end
$$;

comment on function private.check_setting_rule() is
  'API: Private. Trigger on private.setting_rules and private.settings: refuses (KL053) truncating either table, deleting or renaming the rule of a stored setting, a rule its stored value would break, and a rule change outside read committed.';

create function private.check_required_setting_stored()
returns trigger
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
begin
  -- At commit: the rule as it is then (a later statement may have changed or deleted it).
  if exists (select 1 from private.setting_rules r
              where r.key = new.key and not r.may_be_deleted
                and not exists (select 1 from private.settings s where s.key = r.key)) then
    perform private.raise_error('KL053', 'invalid setting',
      format('%s may not be deleted, but no value is stored under it', new.key),
      'Insert the setting in the same transaction as its rule (the rule first).');
  end if;
  return null;
end
$$;
comment on function private.check_required_setting_stored() is
  'API: Private. Deferred constraint trigger on private.setting_rules: at commit, a rule that may not be deleted has its setting stored (KL053).';

create constraint trigger setting_rules_required_have_a_value after insert or update on private.setting_rules
  deferrable initially deferred
  for each row execute function private.check_required_setting_stored();

select private.pin_search_paths();
