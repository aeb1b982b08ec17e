-- Why: private.secret trimmed spaces only (btrim's default), so a secret pasted with a trailing
-- newline went out as it was: "Bearer <key>\n" in KIE's Authorization header (a kie_account 401
-- for a key that looks right) or a newline inside the callback URL KIE is given. The secret was
-- present, so missing_secret did not fire either. Leading and trailing white space is now trimmed
-- (space, tab, line feed, vertical tab, form feed, carriage return, no-break space, and the byte
-- order mark an editor may put first); what is left empty still reads as missing.

create or replace function private.secret(name text)
returns text
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select nullif(btrim(s.decrypted_secret, E' \t\n\f\r' || chr(11) || chr(160) || chr(65279)), '')
    from vault.decrypted_secrets as s where s.name = secret.name
   order by s.updated_at desc limit 1
$$;
