-- Local stack settings: what the local stack needs that a hosted project must never have.
--
-- Development and tests only; applied after the migrations and before the seed. Never a
-- migration: production keeps the migrations' defaults, and an operator changes them with an
-- update on private.settings. Idempotent.

-- Image hosts: the local API gateway (the Storage stand-in serves signed URLs there over plain
-- http) as an exact origin, and img.test, the host the test fixtures use (.test never resolves,
-- RFC 6761), with its subdomains and the port the fixtures exercise.
update private.settings set value = '["http://127.0.0.1:54321", "img.test", "*.img.test"]' where key = 'images.allowed_hosts';
update private.settings set value = '[443, 8443]' where key = 'images.allowed_ports';
