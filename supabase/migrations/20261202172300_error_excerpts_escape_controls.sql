-- Why: errors quoted client text as it came, control characters included: an unknown input key
-- x<ESC>[31mRED<LF>line2 came back in KL007's message with a live terminal escape and a line
-- break, a style key with ESC and BEL in KL015's detail, and bidi overrides could reorder what a
-- log viewer shows. private.excerpt, which raise_error applies to every message, detail and hint
-- (and callers to the values they quote), only shortened.
--
-- It now also writes C0 and C1 controls, DEL, the bidi controls (U+061C, U+200E, U+200F,
-- U+202A-U+202E, U+2066-U+2069) and the line and paragraph separators (U+2028, U+2029) as a
-- visible escape (\u001b), so an error text is always safe to print on one line. Only the part
-- that can be shown is escaped, then cut to max_chars as before. Error texts only: stored text is
-- unchanged.

-- A bounded excerpt of text for error messages.
create or replace function private.excerpt(content text, max_chars integer default 60)
returns text
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
  select case
    when content is null then null
    -- Nothing to escape (the usual case): cut as before.
    when left(content, max_chars) !~ '[\u0001-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]' then
      case when length(content) > max_chars then left(content, max_chars - 1) || '…' else content end
    -- An escape is longer than its character: cut between pieces, never inside an escape.
    else (
      with pieces as (
        select t.n, case when t.c ~ '[\u0001-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]'
                         then '\u' || lpad(to_hex(ascii(t.c)), 4, '0') else t.c end as piece
          from regexp_split_to_table(left(content, max_chars), '') with ordinality as t (c, n)
      ), placed as (
        select p.n, p.piece, sum(length(p.piece)) over (order by p.n) as upto from pieces p
      )
      select case when length(content) > max_chars or max(upto) > max_chars
                  then coalesce(string_agg(piece, '' order by n) filter (where upto <= max_chars - 1), '') || '…'
                  else string_agg(piece, '' order by n) end
        from placed)
  end
$$;
comment on function private.excerpt(text, integer) is
  'API: Private. The text for error messages: controls, bidi controls and line separators written as \uXXXX escapes, cut to max_chars with an ellipsis.';
