-- Why: the comment on private.alerts, rewritten in 20261203215000 to list every key a function
-- raises, missed tick_failing (raised by kiln-account since 20261203212200). It also says where
-- ticks_silent comes from: private.active_alerts computes it when read, and the table never holds it.
comment on table private.alerts is
  'API: Private. Operator alerts (kie_account, kie_low_balance, missing_secret, reconcile_error, deadline_error, pg_net_stalled, retention_error, storage_purge_failing, tick_schedule_drift, tick_failing). Active while cleared_at is null; clear with private.clear_alert(key). Most are also cleared by the tick that finds the problem gone. private.active_alerts adds ticks_silent, computed when read (private.silent_ticks).';
