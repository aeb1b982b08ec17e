-- The text helpers every start calls are PL/pgSQL and strict. Each carries the pinned
-- search_path (a SET clause), and a SQL function with a SET clause is never inlined: Postgres
-- parses and plans its body on every call (it was 18 % of the server's CPU in a start). Strict:
-- an absent text (a null negative prompt) is answered null without a call.
begin;
select plan(9);

select function_lang_is('private', f, array['text'], 'plpgsql', format('private.%s is PL/pgSQL, planned once per session', f))
  from unnest(array['clean_text', 'control_character_problem', 'moderation_text']) f;
select is_strict('private', f, array['text'], format('private.%s is strict', f))
  from unnest(array['clean_text', 'control_character_problem', 'moderation_text']) f;
select is(r, null, format('private.%s(null) is null', f))
  from (values ('clean_text', private.clean_text(null)),
               ('control_character_problem', private.control_character_problem(null)),
               ('moderation_text', private.moderation_text(null))) v(f, r);

select * from finish();
rollback;
