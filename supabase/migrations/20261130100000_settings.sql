-- Why: the pipeline has tunables an operator changes without a deploy (rate budgets, backoff,
-- deadlines, accepted image hosts, retention). They live in one private key/value table, read
-- through one function, so every rule names its setting and every setting documents itself.
-- Secrets never go here: they live in Vault.

create table private.settings (
  key text primary key constraint settings_key_format check (key ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$'),
  value jsonb not null,
  description text not null constraint settings_description_not_blank check (btrim(description) <> ''),
  updated_at timestamptz not null default now()
);
comment on table private.settings is
  'API: Private. Operator tunables, one row per key, value as jsonb. Change with update; read with private.setting(key).';
comment on column private.settings.key is 'Dotted lowercase name, e.g. dispatch.create_per_window.';
comment on column private.settings.value is 'The value as jsonb (number, string, boolean, array or object).';
comment on column private.settings.description is 'What the setting controls and its unit.';

-- Only the owner (migrations, operators as postgres) reads or writes it; RLS with no policy keeps
-- every other role out even if a grant slips in.
alter table private.settings enable row level security;
revoke all on private.settings from public;

create trigger settings_touch_updated_at before update on private.settings
  for each row execute function private.touch_updated_at();

create function private.setting(key text)
returns jsonb
language sql stable
set search_path = ''
as $$
  select s.value from private.settings as s where s.key = setting.key
$$;
comment on function private.setting(text) is
  'API: Private. The value of a setting, or null when the key does not exist.';
