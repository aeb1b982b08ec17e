-- Local stack settings: what the local stack needs that a hosted project must never have.
--
-- Development and tests only; applied after the migrations and before the seed. Never a
-- migration: production keeps the migrations' defaults, and an operator changes them with an
-- update on private.settings. Idempotent.

-- The dispatch pipeline reads the functions' base URL from Vault (the callback URL KIE calls and
-- the finalize request go there). Locally that is the functions gateway; an existing secret (an
-- operator's own) is left alone. The KIE key and the finalize credential are not set here (tests
-- set their own; `npm run stack:up` sets the emulator's with sql/local_stack_pipeline.sql): without
-- them jobs wait and the kiln-account tick raises the missing_secret alert.
do $$
begin
  if not exists (select 1 from vault.secrets where name = 'functions_base_url') then
    perform vault.create_secret('http://127.0.0.1:54321/functions/v1', 'functions_base_url',
      'Local functions gateway (development only)');
  end if;
end
$$;

-- Image hosts: the local API gateway (the Storage stand-in serves signed URLs there over plain
-- http) as an exact origin, and img.test, the host the test fixtures use (.test never resolves,
-- RFC 6761), with its subdomains and the port the fixtures exercise.
update private.settings set value = '["http://127.0.0.1:54321", "img.test", "*.img.test"]' where key = 'images.allowed_hosts';
update private.settings set value = '[443, 8443]' where key = 'images.allowed_ports';

-- Result hosts: the local KIE emulator serves its result files itself, over plain http on
-- loopback; its default origin is accepted (a stack or test on another port adds its own), and
-- kie.test and kie.example, the hosts the test fixtures' reports name (reserved names that never
-- resolve, RFC 6761 and RFC 2606).
update private.settings set value = '["http://127.0.0.1:54329", "kie.test", "kie.example"]' where key = 'results.allowed_hosts';
