-- The local stack's pipeline wiring: KIE is the emulator, the functions are behind the gateway,
-- and the finalize credential is the one the stack gave the kie-callback function.
--
-- Development only, run by `npm run stack:up` (scripts/stack.sh) after the migrations, with
-- psql variables kie_url, kie_key, gateway_origin, functions_url and finalize_credential. Never a migration,
-- and not part of the test setup: tests set (and restore) their own. Idempotent; it sets the
-- values every time, so the stack always points at its own emulator and gateway.

update private.settings set value = to_jsonb(:'kie_url'::text) where key = 'kie.base_url';
-- Input photos are signed URLs of the gateway's Storage: its exact origin is an accepted image
-- host (sql/local_settings.sql lists the default port; a stack on another port adds its own).
update private.settings set value = value || to_jsonb(:'gateway_origin'::text)
 where key = 'images.allowed_hosts' and not value ? :'gateway_origin';
-- The emulator serves the result files: its origin is an accepted result host.
update private.settings set value = value || to_jsonb(substring(:'kie_url'::text from '^[a-z]+://[^/]+'))
 where key = 'results.allowed_hosts' and not value ? substring(:'kie_url'::text from '^[a-z]+://[^/]+');

create temp table local_secrets (name text primary key, value text not null, description text not null);
insert into local_secrets values
  ('kie_api_key', :'kie_key', 'KIE emulator key (local stack only)'),
  ('functions_base_url', :'functions_url', 'Local functions gateway (local stack only)'),
  ('finalize_credential', :'finalize_credential', 'Finalize credential of the local kie-callback function (local stack only)');

select vault.update_secret(s.id, l.value)
  from vault.decrypted_secrets s join local_secrets l on l.name = s.name
 where s.decrypted_secret is distinct from l.value;
select vault.create_secret(l.value, l.name, l.description)
  from local_secrets l
 where not exists (select 1 from vault.secrets s where s.name = l.name);
