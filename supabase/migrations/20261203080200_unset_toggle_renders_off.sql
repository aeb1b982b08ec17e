-- Why: a toggle is a switch, and the app draws one that is off until the user turns it on. A
-- toggle with options ([text when off, text when on]) but no default, left untouched, rendered
-- nothing: neither its off text nor its on text, a prompt no state of the switch describes. It
-- now renders as off. Without options the off state already rendered nothing, so only toggles
-- with an off text change. A required toggle with no value is still KL005.

create or replace function private.render_field_value(field jsonb, value jsonb)
returns text
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
  select case
    when field ->> 'type' = 'toggle' and field ? 'options' then
      field -> 'options' ->> (case when value is not null and value::text = 'true' then 1 else 0 end)
    when field ->> 'type' = 'toggle' then case when value is not null and value::text = 'true' then field ->> 'label' else '' end
    when value is null or jsonb_typeof(value) = 'null' then ''
    else value #>> '{}'
  end
$$;
comment on function private.render_field_value(jsonb, jsonb) is
  'API: Private. Renders one resolved field value as prompt text; a toggle with no value renders as off.';
