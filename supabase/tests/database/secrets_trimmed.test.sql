-- Vault secrets are read trimmed of surrounding white space, line breaks, no-break spaces and a
-- byte order mark included (a secret pasted with a trailing newline must not go out in a header or
-- a URL); white space alone reads as missing.
begin;
select plan(5);
\ir dispatch_fixture.sql

delete from vault.secrets where name in ('kie_api_key', 'functions_base_url');
do $$
begin
  perform vault.create_secret(E' test-kie-key\r\n', 'kie_api_key');
  perform vault.create_secret(E'https://fn.test/functions/v1\n', 'functions_base_url');
end
$$;
select is(private.secret('kie_api_key'), 'test-kie-key', 'spaces, a carriage return and a newline around the key are trimmed');
select is(private.secret('functions_base_url'), 'https://fn.test/functions/v1', 'and a newline after a URL');

select private.account_tick() as credit_check_sent \gset
select is((select headers ->> 'Authorization' from net.http_request_queue where url like 'https://kie.test/%' order by id desc limit 1),
  'Bearer test-kie-key', 'what goes out to KIE carries the trimmed key');

delete from vault.secrets where name = 'kie_api_key';
do $$ begin perform vault.create_secret(chr(65279) || 'test-kie-key' || chr(160) || chr(11), 'kie_api_key'); end $$;
select is(private.secret('kie_api_key'), 'test-kie-key', 'a byte order mark, a no-break space and a vertical tab too');

delete from vault.secrets where name = 'kie_api_key';
do $$ begin perform vault.create_secret(E' \t\r\n', 'kie_api_key'); end $$;
select is(private.secret('kie_api_key'), null, 'whitespace alone reads as missing');

select * from finish();
rollback;
