-- Why: private.active_alerts shows ticks_silent, which the view computes when it is read
-- (20261203216000), and the view's comment says alerts are cleared with private.clear_alert(key).
-- private.alerts never holds ticks_silent, so clear_alert('ticks_silent') answered KL043 "no such
-- alert", "no alert ticks_silent", with the hint "See private.active_alerts.": the very view that
-- shows it. An operator following the runbook learned nothing about why, or what to do.
--
-- clear_alert now refuses ticks_silent (still KL043: there is no stored alert to clear) saying
-- that the view computes it from pg_cron's run history, and that it goes by itself once pg_cron
-- starts the ticks again. Any other key is as in 20261130150100.

create or replace function private.clear_alert(key text, at timestamptz default now())
returns boolean
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
begin
  if clear_alert.key = 'ticks_silent' then
    perform private.raise_error('KL043', 'ticks_silent cannot be cleared',
      'private.active_alerts computes it when read, from pg_cron''s run history; it is never stored',
      'It goes by itself once pg_cron starts the ticks again: see step 4 of "A job seems stuck" in the README.');
  end if;
  if not exists (select 1 from private.alerts a where a.key = clear_alert.key) then
    perform private.raise_error('KL043', 'no such alert', format('no alert %s', clear_alert.key), 'See private.active_alerts.');
  end if;
  update private.alerts a set cleared_at = clear_alert.at where a.key = clear_alert.key and a.cleared_at is null;
  return found;
end
$$;
comment on function private.clear_alert(text, timestamptz) is
  'API: Private. Operators: clears an active alert (a cleared kie_account alert resumes dispatch). True when it was active. KL043 for a key with no stored alert, and for ticks_silent, which private.active_alerts computes when read and which goes once pg_cron starts the ticks again.';
