-- Why: recent_prompts returned `table (prompt text, style text, ...)`, and the type generator
-- (`supabase gen types typescript`, here `npm run db:types`) types every column of a `returns
-- table` function as never null: database.types.ts promised `style: string`. A prompt sent without
-- a style (most of them), or whose style was deleted since (generation_jobs.style is set null),
-- comes back with `style: null`, so an app that trusts the generated type (`row.style.length`, a
-- non-nullable Dart or Swift field) breaks on the first such row.
--
-- The rows are now of a named composite type, public.recent_prompt, with the same columns in the
-- same order: PostgREST answers exactly as before (an array of objects with these keys), and the
-- generator types a composite's attributes as nullable, so `style: string | null` is what the app
-- reads (the others say `| null` too; the function never returns null for them). A function's
-- result type cannot change in place, so it is dropped and created again, otherwise as in
-- 20261203210100, with its comment and grant.

create type public.recent_prompt as (
  prompt text,
  style text,
  quality text,
  aspect_ratio text,
  last_used_at timestamptz
);
comment on type public.recent_prompt is
  'A row of recent_prompts: the prompt as sent, the style key used with it (null when none was sent, or the style was deleted since), its quality and aspect ratio, and when it was last used.';

drop function public.recent_prompts(integer);

create function public.recent_prompts("limit" integer default 20)
returns setof public.recent_prompt
language plpgsql stable
set search_path = ''
as $$
begin
  if auth.uid() is null then
    raise exception using errcode = 'KL001', message = 'not signed in', hint = 'Sign in first.';
  end if;
  if "limit" is null or "limit" not between 1 and 100 then
    raise exception using errcode = 'KL025', message = 'limit must be between 1 and 100',
      detail = case when "limit" is null then 'got no limit' else format('got %s', "limit") end;
  end if;
  return query
    select latest.prompt, latest.style, latest.quality, latest.aspect_ratio, latest.created_at
      from (select distinct on (recent.prompt) recent.*
              from (select j.request ->> 'prompt' as prompt, j.style, j.quality, j.aspect_ratio, j.created_at
                      from public.generation_jobs j
                     where j.user_id = auth.uid() and j.mode = 'text-to-image' and j.deleted_at is null
                     order by j.created_at desc
                     limit 1000) recent
             order by recent.prompt, recent.created_at desc) latest
     order by latest.created_at desc
     limit "limit";
end
$$;
comment on function public.recent_prompts("limit" integer) is
  'My most recent distinct text-to-image prompts (among my latest 1,000 text-to-image jobs, deleted ones left out), newest first, for the Create tab; style is null when the prompt was sent without one.';
grant execute on function public.recent_prompts("limit" integer) to authenticated;
