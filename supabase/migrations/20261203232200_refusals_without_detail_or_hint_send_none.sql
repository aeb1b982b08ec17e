-- Why: private.raise_error sent a refusal without a detail or a hint with that field empty, so
-- through PostgREST a KL error arrived with "details": "" or "hint": "" where Postgres' own errors
-- (42501 for the anon key, 22P02 for a malformed uuid) and PostgREST's own (PGRST...) send null,
-- and where recent_prompts' refusals, raised without raise_error, already sent null. An app had
-- to treat "" and null alike to know whether there is something to show (a Dart `hint != null`
-- check showed an empty line). A field with nothing to say is now left out of the error, so it
-- arrives as null like every other error's; a refusal's texts are otherwise unchanged. Inside the
-- database nothing changes: PL/pgSQL's GET STACKED DIAGNOSTICS reads a missing field as ''.

create or replace function private.raise_error(code text, message text, detail text default null, hint text default null)
returns void
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  detail_text text := nullif(private.excerpt(detail, 300), '');
  hint_text text := nullif(private.excerpt(hint, 200), '');
begin
  -- RAISE refuses a null option, so each combination of present fields is its own statement.
  if detail_text is null and hint_text is null then
    raise exception using errcode = code, message = private.excerpt(message, 200);
  elsif detail_text is null then
    raise exception using errcode = code, message = private.excerpt(message, 200), hint = hint_text;
  elsif hint_text is null then
    raise exception using errcode = code, message = private.excerpt(message, 200), detail = detail_text;
  end if;
  raise exception using errcode = code, message = private.excerpt(message, 200), detail = detail_text, hint = hint_text;
end
$$;
comment on function private.raise_error(text, text, text, text) is
  'API: Private. Raises one of the documented KLxxx errors (see supabase/error-codes.md); message and hint at most 200 characters, detail 300. A detail or hint that is null or empty is left out of the error (PostgREST: null).';
