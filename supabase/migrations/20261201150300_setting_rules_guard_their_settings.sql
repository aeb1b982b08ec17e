-- Why: every settings write is checked against its rule (20261201140100), but two writes went
-- around the check: truncate private.settings (no row trigger fires) emptied every setting the
-- pipeline reads, and changing private.setting_rules itself could leave a stored value its rule no
-- longer allows, or a setting with no rule at all.
--
-- Both tables now refuse truncate, and a rule that is deleted, renamed or changed must still hold
-- for the value stored under its key. (The owner can still disable these triggers: they guard
-- mistakes, not the owner.)

create function private.check_setting_rule()
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
        'Change the value first, then the rule.');
    end if;
  end if;
  return new;
end
$$;
comment on function private.check_setting_rule() is
  'API: Private. Trigger on private.setting_rules and private.settings: refuses (KL053) truncating either table, deleting or renaming the rule of a stored setting, and a rule its stored value would break.';

create trigger setting_rules_hold_for_stored_values before insert or update or delete on private.setting_rules
  for each row execute function private.check_setting_rule();
create trigger setting_rules_no_truncate before truncate on private.setting_rules
  for each statement execute function private.check_setting_rule();
create trigger settings_no_truncate before truncate on private.settings
  for each statement execute function private.check_setting_rule();

select private.pin_search_paths();
