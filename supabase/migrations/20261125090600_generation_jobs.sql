-- Why: a generation job is what the app watches (Realtime) and what the pipeline drives. The
-- app's enum has exactly four statuses; the pipeline's finer internal state lives in `stage`.
-- Every column here is safe to show the job's owner: provider task ids and per-job secrets live
-- in private tables (added with the dispatch pipeline).

create table public.generation_jobs (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references public.profiles (id) on delete cascade,
  template_id uuid references public.templates (id) on delete set null,
  mode text not null constraint generation_jobs_mode_valid check (mode in ('text-to-image', 'image-to-image')),
  prompt text not null,
  negative_prompt text,
  style text references public.styles (key) on update cascade on delete set null,
  inputs jsonb not null default '{}',
  input_image_urls text[] not null default '{}',
  status text not null default 'pending'
    constraint generation_jobs_status_valid check (status in ('pending', 'generating', 'completed', 'failed')),
  stage text not null default 'queued',
  aspect_ratio text not null,
  image_count integer not null default 1 constraint generation_jobs_image_count_range check (image_count between 1 and 4),
  result_urls text[] not null default '{}',
  error_code text,
  error_message text,
  model_key text not null references public.models (key),
  quality text not null,
  credits_charged integer not null constraint generation_jobs_credits_charged_non_negative check (credits_charged >= 0),
  idempotency_key text,
  request jsonb not null,
  request_fingerprint text not null,
  retry_of uuid references public.generation_jobs (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  completed_at timestamptz,
  constraint generation_jobs_stage_matches_status check (
    (stage = 'queued' and status = 'pending') or (stage = 'cancelled' and status = 'failed')
  ),
  constraint generation_jobs_finished_have_completed_at check ((status in ('completed', 'failed')) = (completed_at is not null)),
  constraint generation_jobs_failures_explain_themselves check (status <> 'failed' or (error_code is not null and error_message is not null))
);
create unique index generation_jobs_user_idempotency_key on public.generation_jobs (user_id, idempotency_key) where idempotency_key is not null;
create unique index generation_jobs_one_retry_per_job on public.generation_jobs (retry_of) where retry_of is not null;
create index generation_jobs_user_created_idx on public.generation_jobs (user_id, created_at desc);
create index generation_jobs_user_active_idx on public.generation_jobs (user_id) where status in ('pending', 'generating');
create index generation_jobs_template_id_idx on public.generation_jobs (template_id);
create index generation_jobs_model_key_idx on public.generation_jobs (model_key);
create index generation_jobs_style_idx on public.generation_jobs (style);

comment on table public.generation_jobs is
  'One image generation. Created by start_generation; follow it with Realtime until status is completed (result_urls) or failed (error_message, credits refunded).';
comment on column public.generation_jobs.prompt is 'The prompt sent to the model: rendered from the template, or the user''s prompt, with the style fragment.';
comment on column public.generation_jobs.inputs is 'Template inputs as validated, defaults applied.';
comment on column public.generation_jobs.input_image_urls is 'The user''s photos for image-to-image.';
comment on column public.generation_jobs.status is 'pending (waiting to be sent), generating (at the provider), completed or failed.';
comment on column public.generation_jobs.stage is 'Internal pipeline step within a status; informational for clients.';
comment on column public.generation_jobs.result_urls is 'Storage URLs of the generated images once completed.';
comment on column public.generation_jobs.error_code is 'Stable failure code for the app (e.g. cancelled).';
comment on column public.generation_jobs.error_message is 'Human-readable failure reason.';
comment on column public.generation_jobs.credits_charged is 'Credits debited at start; refunded once if the job fails.';
comment on column public.generation_jobs.request is 'The parameters as the app sent them (retry_generation replays them).';
comment on column public.generation_jobs.request_fingerprint is 'Hash of request: an idempotency key reused with other parameters is a conflict.';
comment on column public.generation_jobs.retry_of is 'The failed job this one retries.';
comment on column public.generation_jobs.id is 'Job id: follow it with Realtime (filter id=eq.<id>).';
comment on column public.generation_jobs.user_id is 'Owner of the job.';
comment on column public.generation_jobs.template_id is 'The template used (image-to-image); null for text-to-image.';
comment on column public.generation_jobs.mode is 'text-to-image or image-to-image.';
comment on column public.generation_jobs.negative_prompt is 'What to avoid (text-to-image models that support it).';
comment on column public.generation_jobs.style is 'The style preset applied, if any.';
comment on column public.generation_jobs.aspect_ratio is 'Aspect ratio sent to the model.';
comment on column public.generation_jobs.image_count is 'Number of images requested.';
comment on column public.generation_jobs.model_key is 'The model used (models.key).';
comment on column public.generation_jobs.quality is 'fast, standard or ultra.';
comment on column public.generation_jobs.idempotency_key is 'The app''s key for this start: the same key returns this job again.';
comment on column public.generation_jobs.created_at is 'When the job was started.';
comment on column public.generation_jobs.updated_at is 'Last change (kept by a trigger).';
comment on column public.generation_jobs.completed_at is 'When the job completed or failed.';

create trigger generation_jobs_touch_updated_at before update on public.generation_jobs
  for each row execute function private.touch_updated_at();

-- Ledger entries of a job keep the job (a job is deleted only with its account).
alter table public.credit_ledger
  add constraint credit_ledger_job_id_fkey foreign key (job_id) references public.generation_jobs (id);

-- ---------------------------------------------------------------------------------------------
-- Access: users read their own jobs (and receive them through Realtime); nobody writes directly.
-- ---------------------------------------------------------------------------------------------
alter table public.generation_jobs enable row level security;
grant select on public.generation_jobs to authenticated;
revoke all on public.generation_jobs from service_role;
grant select on public.generation_jobs to service_role;

create policy "Users can read their own jobs" on public.generation_jobs
  for select to authenticated using (user_id = (select auth.uid()));

-- Full replica identity: an update then carries every column, including large unchanged values
-- (a long prompt) that Postgres would otherwise leave out of the change stream, so each status
-- change reaches the app as a complete row. Jobs change state a handful of times; the extra WAL is small.
alter table public.generation_jobs replica identity full;
alter publication supabase_realtime add table public.generation_jobs;
