-- The public surface, pinned: what the Data API exposes (tables, views, functions) and the
-- columns the app's models are built on. Adding an endpoint or a table to `public`, or changing
-- the app's contract, means editing this file on purpose.
begin;
select plan(68);

-- =============================================================================================
-- Schemas
-- =============================================================================================
select has_schema('private', 'internals live in the private schema');
select is(obj_description('private'::regnamespace, 'pg_namespace') like 'API: Private.%', true, 'private is documented as API: Private');

-- =============================================================================================
-- Tables, views and functions in public
-- =============================================================================================
select tables_are('public',
  array['plans', 'models', 'styles', 'templates', 'profiles', 'credit_ledger', 'generation_jobs'],
  'public holds exactly the tables the app reads');
select views_are('public', array[]::name[], 'public has no views');
select materialized_views_are('public', array[]::name[], 'public has no materialized views');
select functions_are('public',
  array['start_generation', 'retry_generation', 'cancel_generation', 'delete_generation', 'recent_prompts', 'grant_credits', 'set_plan'],
  'public holds exactly the app RPCs and the operator functions');
select has_table('private', 'blocked_terms', 'the moderation blocklist is private');

-- Only our migrations build in public. On the platform an extension created without a schema
-- lands in public as supabase_admin, whose default privileges there grant everything to the API
-- roles: no extension may live in public, and everything in it belongs to postgres.
select is_empty($$ select extname from pg_extension where extnamespace = 'public'::regnamespace $$,
  'no extension is installed in public');
select is_empty(
  $$ select c.oid::regclass::text from pg_class c
      where c.relnamespace = 'public'::regnamespace and c.relowner <> 'postgres'::regrole
     union all
     select p.oid::regprocedure::text from pg_proc p
      where p.pronamespace = 'public'::regnamespace and p.proowner <> 'postgres'::regrole $$,
  'every relation and function in public is owned by postgres');

-- Signatures and return types the app and operators call.
select function_returns('public', 'start_generation',
  array['text', 'uuid', 'jsonb', 'text', 'text', 'text[]', 'text', 'text', 'text'], 'generation_jobs',
  'start_generation(prompt, template_id, inputs, quality, aspect_ratio, image_urls, style, negative_prompt, idempotency_key) returns the job');
select function_returns('public', 'retry_generation', array['uuid'], 'generation_jobs', 'retry_generation(job_id) returns the job');
select function_returns('public', 'cancel_generation', array['uuid'], 'generation_jobs', 'cancel_generation(job_id) returns the job');
select function_returns('public', 'recent_prompts', array['integer'], 'setof recent_prompt',
  'recent_prompts(limit) returns rows of a named type (the type generator types its attributes nullable, as style is)');
select function_returns('public', 'grant_credits', array['uuid', 'integer', 'text', 'text'], 'credit_ledger',
  'grant_credits(user_id, amount, reason, idempotency_key) returns the ledger entry');
select function_returns('public', 'set_plan', array['uuid', 'text'], 'profiles', 'set_plan(user_id, plan) returns the profile');
select results_eq(
  $$ select pg_get_function_arguments('public.start_generation(text, uuid, jsonb, text, text, text[], text, text, text)'::regprocedure) $$,
  $$ values ('prompt text DEFAULT NULL::text, template_id uuid DEFAULT NULL::uuid, inputs jsonb DEFAULT NULL::jsonb, quality text DEFAULT ''fast''::text, aspect_ratio text DEFAULT NULL::text, image_urls text[] DEFAULT NULL::text[], style text DEFAULT NULL::text, negative_prompt text DEFAULT NULL::text, idempotency_key text DEFAULT NULL::text') $$,
  'start_generation''s named parameters and defaults (the app calls it with named arguments)');
select is(
  (select string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', ' order by a.attnum) from pg_attribute a
    where a.attrelid = 'public.recent_prompt'::regclass and a.attnum > 0 and not a.attisdropped),
  'prompt text, style text, quality text, aspect_ratio text, last_used_at timestamp with time zone',
  'recent_prompts'' columns (public.recent_prompt)');

-- Security definer where the function is the only door; invoker otherwise.
select is_definer('public', 'start_generation', array['text', 'uuid', 'jsonb', 'text', 'text', 'text[]', 'text', 'text', 'text'],
  'start_generation is security definer');
select is_definer('public', 'retry_generation', array['uuid'], 'retry_generation is security definer');
select is_definer('public', 'cancel_generation', array['uuid'], 'cancel_generation is security definer');
select is_definer('public', 'grant_credits', array['uuid', 'integer', 'text', 'text'], 'grant_credits is security definer');
select is_definer('public', 'set_plan', array['uuid', 'text'], 'set_plan is security definer');
select isnt_definer('public', 'recent_prompts', array['integer'], 'recent_prompts is security invoker (RLS does the filtering)');

-- One function shape: search_path pinned everywhere, and documented. A function that runs with
-- the owner's rights names pg_catalog first and pg_temp last, so a caller's temporary types can
-- never shadow built-in ones in it (temp_schema_shadowing.test.sql).
select is_empty(
  $$ select p.oid::regprocedure from pg_proc p
      where p.pronamespace in ('public'::regnamespace, 'private'::regnamespace)
        and not coalesce(p.proconfig && array['search_path=""', 'search_path=pg_catalog, pg_temp'], false) $$,
  'every function in public and private pins its search_path');
select is_empty(
  $$ select p.oid::regprocedure from pg_proc p
      where (p.pronamespace in ('public'::regnamespace, 'private'::regnamespace) and p.prosecdef
             or p.pronamespace = 'private'::regnamespace)
        and not coalesce('search_path=pg_catalog, pg_temp' = any (p.proconfig), false) $$,
  'every security-definer function, and every private function (they run as the owner), has search_path = pg_catalog, pg_temp');
select is_empty(
  $$ select p.oid::regprocedure from pg_proc p
      where p.pronamespace in ('public'::regnamespace, 'private'::regnamespace) and obj_description(p.oid, 'pg_proc') is null $$,
  'every function in public and private has a comment');
select is_empty(
  $$ select c.oid::regclass from pg_class c
      where c.relnamespace in ('public'::regnamespace, 'private'::regnamespace) and c.relkind in ('r', 'p')
        and obj_description(c.oid, 'pg_class') is null $$,
  'every table in public and private has a comment');
select is_empty(
  $$ select c.relname || '.' || a.attname from pg_attribute a join pg_class c on c.oid = a.attrelid
      where c.relnamespace = 'public'::regnamespace and c.relkind = 'r' and a.attnum > 0 and not a.attisdropped
        and col_description(c.oid, a.attnum) is null $$,
  'every column of every public table has a comment (the app developers read them in generated types)');

-- =============================================================================================
-- The app's contract: templates
-- =============================================================================================
select columns_are('public', 'templates', array[
  'id', 'name', 'description', 'thumbnail_url', 'category', 'prompt_template', 'input_fields', 'default_aspect_ratio',
  'is_premium', 'is_active', 'order', 'min_images', 'max_images', 'published_at', 'created_at', 'updated_at'],
  'templates has exactly the app''s columns plus image bounds and published_at');
select col_type_is('public', 'templates', 'id', 'uuid', 'templates.id is a uuid');
select col_type_is('public', 'templates', 'name', 'text', 'templates.name is text');
select col_type_is('public', 'templates', 'description', 'text', 'templates.description is text');
select col_type_is('public', 'templates', 'thumbnail_url', 'text', 'templates.thumbnail_url is text');
select col_type_is('public', 'templates', 'category', 'text', 'templates.category is text');
select col_type_is('public', 'templates', 'prompt_template', 'text', 'templates.prompt_template is text');
select col_type_is('public', 'templates', 'input_fields', 'jsonb', 'templates.input_fields is jsonb');
select col_type_is('public', 'templates', 'default_aspect_ratio', 'text', 'templates.default_aspect_ratio is text');
select col_type_is('public', 'templates', 'is_premium', 'boolean', 'templates.is_premium is boolean');
select col_type_is('public', 'templates', 'is_active', 'boolean', 'templates.is_active is boolean');
select col_type_is('public', 'templates', 'order', 'integer', 'templates.order is an integer');
select col_type_is('public', 'templates', 'created_at', 'timestamp with time zone', 'templates.created_at is a timestamptz');
select col_type_is('public', 'templates', 'updated_at', 'timestamp with time zone', 'templates.updated_at is a timestamptz');
select col_not_null('public', 'templates', 'input_fields', 'templates.input_fields is never null');

-- =============================================================================================
-- The app's contract: generation_jobs
-- =============================================================================================
select columns_are('public', 'generation_jobs', array[
  'id', 'user_id', 'template_id', 'mode', 'prompt', 'negative_prompt', 'style', 'inputs', 'input_image_urls', 'status', 'stage',
  'aspect_ratio', 'image_count', 'result_urls', 'error_code', 'error_message', 'model_key', 'quality', 'credits_charged',
  'idempotency_key', 'request', 'request_fingerprint', 'retry_of', 'created_at', 'updated_at', 'completed_at',
  'results_removed_at', 'deleted_at'],
  'generation_jobs has exactly these columns (all visible to the job''s owner and on Realtime)');
select col_type_is('public', 'generation_jobs', 'id', 'uuid', 'generation_jobs.id is a uuid');
select col_type_is('public', 'generation_jobs', 'user_id', 'uuid', 'generation_jobs.user_id is a uuid');
select col_type_is('public', 'generation_jobs', 'template_id', 'uuid', 'generation_jobs.template_id is a uuid');
select col_type_is('public', 'generation_jobs', 'prompt', 'text', 'generation_jobs.prompt is text');
select col_type_is('public', 'generation_jobs', 'status', 'text', 'generation_jobs.status is text');
select col_type_is('public', 'generation_jobs', 'aspect_ratio', 'text', 'generation_jobs.aspect_ratio is text');
select col_type_is('public', 'generation_jobs', 'image_count', 'integer', 'generation_jobs.image_count is an integer');
select col_type_is('public', 'generation_jobs', 'result_urls', 'text[]', 'generation_jobs.result_urls is text[]');
select col_type_is('public', 'generation_jobs', 'error_message', 'text', 'generation_jobs.error_message is text');
select col_type_is('public', 'generation_jobs', 'created_at', 'timestamp with time zone', 'generation_jobs.created_at is a timestamptz');
select col_type_is('public', 'generation_jobs', 'completed_at', 'timestamp with time zone', 'generation_jobs.completed_at is a timestamptz');
select col_not_null('public', 'generation_jobs', 'result_urls', 'result_urls is never null (empty until completed)');
select col_default_is('public', 'generation_jobs', 'status', 'pending', 'a new job is pending');
select results_eq(
  $$ select array_agg(m[1] order by m[1]) collate "default"
       from pg_constraint c, regexp_matches(pg_get_constraintdef(c.oid), '''([^'']+)''', 'g') m
      where c.conrelid = 'public.generation_jobs'::regclass and c.conname = 'generation_jobs_status_valid' $$,
  $$ values (array['completed', 'failed', 'generating', 'pending']) $$,
  'status is one of exactly the app''s four values');
select col_is_fk('public', 'generation_jobs', 'user_id', 'generation_jobs.user_id references profiles');

-- =============================================================================================
-- Profiles and the ledger (read by the app)
-- =============================================================================================
select columns_are('public', 'profiles', array['id', 'plan', 'credits', 'created_at', 'updated_at'], 'profiles has exactly these columns');
select col_type_is('public', 'profiles', 'credits', 'integer', 'profiles.credits is an integer');
select col_type_is('public', 'profiles', 'plan', 'text', 'profiles.plan is text');
select columns_are('public', 'credit_ledger',
  array['id', 'user_id', 'kind', 'amount', 'balance_after', 'job_id', 'reason', 'idempotency_key', 'created_at'],
  'credit_ledger has exactly these columns');

-- Concurrency by construction: the unique indexes the functions rely on.
select index_is_unique('public', 'credit_ledger', 'credit_ledger_one_entry_per_job_and_kind',
  'one ledger entry per job and kind (one debit, at most one refund)');
select index_is_unique('public', 'credit_ledger', 'credit_ledger_user_idempotency_key', 'one ledger entry per user and idempotency key');
select index_is_unique('public', 'generation_jobs', 'generation_jobs_user_idempotency_key', 'one job per user and idempotency key');
select index_is_unique('public', 'generation_jobs', 'generation_jobs_one_retry_per_job', 'one retry per failed job');
select index_is_unique('public', 'models', 'models_one_active_per_mode_quality', 'one active model per mode and quality');

select * from finish();
rollback;
