-- Why: generation_jobs has eight indexes. Six took an entry on every start; two of those are the
-- indexes behind the template and style foreign keys, which exist only so that deleting a
-- template or a style (and renaming a style, on update cascade) finds its jobs without a scan.
-- They also held an entry for every job without a template or a style: every text-to-image job,
-- most of them styleless, so both grew by one null entry per start that no lookup can use. Made
-- partial on "is not null", they serve the same lookups (key = value implies not null) and skip
-- those inserts. The others stay, each with a reader: the primary key (lookups by id), user and
-- created_at (the per-minute limit and the job list), the partial active-jobs index (the active
-- limit), model_key (the models foreign key: a model is only ever deactivated, but its delete
-- or key change must not scan), and the partial unique indexes for idempotency keys and
-- retries (inserted only when set).
-- Deploying: the drops lock generation_jobs (starts, reads, callbacks wait) until the migration
-- commits, while both indexes are rebuilt. On a large table, build the partial indexes by hand
-- first (`create index concurrently` under other names) or apply this in a quiet moment.
drop index public.generation_jobs_template_id_idx;
create index generation_jobs_template_id_idx on public.generation_jobs (template_id) where template_id is not null;
drop index public.generation_jobs_style_idx;
create index generation_jobs_style_idx on public.generation_jobs (style) where style is not null;
comment on index public.generation_jobs_template_id_idx is
  'Jobs of a template: what deleting a template updates (foreign key on delete set null). Only jobs that have one.';
comment on index public.generation_jobs_style_idx is
  'Jobs of a style: what renaming or deleting a style updates (foreign key on update cascade, on delete set null). Only jobs that have one.';
