-- Why: the app maps errors by code, never by wording. Every refusal raises a stable custom
-- SQLSTATE (class "KL", listed in supabase/error-codes.md) with a message, a detail saying what
-- was wrong and a hint saying how to fix it. PostgREST returns all four in its error body.

create function private.raise_error(code text, message text, detail text default null, hint text default null)
returns void
language plpgsql volatile
set search_path = ''
as $$
begin
  raise exception using errcode = code, message = message, detail = coalesce(detail, ''), hint = coalesce(hint, '');
end
$$;
comment on function private.raise_error(text, text, text, text) is
  'API: Private. Raises one of the documented KLxxx errors (see supabase/error-codes.md).';
