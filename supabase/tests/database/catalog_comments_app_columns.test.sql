-- The column comments the app's developers read (the dashboard, PostgREST's OpenAPI description,
-- generated docs) say what the values are: result_urls holds Storage object paths, bucket first,
-- to sign, never URLs; a model's prompt limit counts UTF-16 code units, as start_generation does.
begin;
select plan(3);

select matches(col_description('public.generation_jobs'::regclass,
                 (select attnum from pg_attribute where attrelid = 'public.generation_jobs'::regclass and attname = 'result_urls')),
  '(?i)object paths', 'generation_jobs.result_urls says it holds object paths');
select doesnt_match(col_description('public.generation_jobs'::regclass,
                      (select attnum from pg_attribute where attrelid = 'public.generation_jobs'::regclass and attname = 'result_urls')),
  'Storage URLs', 'and no longer calls them URLs');
select matches(col_description('public.models'::regclass,
                 (select attnum from pg_attribute where attrelid = 'public.models'::regclass and attname = 'max_prompt_length')),
  'UTF-16 code units', 'models.max_prompt_length says how the limit is counted');

select * from finish();
rollback;
