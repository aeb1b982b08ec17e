-- Why: the generation pipeline talks to KIE from Postgres (pg_net, asynchronous HTTP after
-- commit) and drives retries, polling, timeouts and cleanup from scheduled ticks (pg_cron).
-- Both are platform extensions; enabling them here keeps a fresh project one `db push` away.

create extension if not exists pg_net with schema extensions;
create extension if not exists pg_cron with schema pg_catalog;
