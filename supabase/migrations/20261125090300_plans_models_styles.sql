-- Why: plans, the model catalog and style presets are data, not code. KIE's model ids, field
-- names and limits change (kie-api.md §5), prices and plan gates are business decisions; the
-- rules in start_generation read them from here. Plans and models are reference data the
-- functions depend on (every signup lands on `free`), so they ship with the migrations and exist
-- on every environment; operators change them with ordinary updates.

-- ---------------------------------------------------------------------------------------------
-- updated_at, kept by the database so clients can sync "what changed since".
-- ---------------------------------------------------------------------------------------------
create function private.touch_updated_at()
returns trigger
language plpgsql volatile
set search_path = ''
as $$
begin
  new.updated_at := now();
  return new;
end
$$;
comment on function private.touch_updated_at() is 'API: Private. Trigger: sets updated_at on every update.';

-- ---------------------------------------------------------------------------------------------
-- plans
-- ---------------------------------------------------------------------------------------------
create table public.plans (
  id text primary key constraint plans_id_format check (id ~ '^[a-z][a-z0-9_]{0,31}$'),
  name text not null,
  rank integer not null constraint plans_rank_unique unique,
  max_active_jobs integer not null constraint plans_max_active_jobs_positive check (max_active_jobs > 0),
  starts_per_minute integer not null constraint plans_starts_per_minute_positive check (starts_per_minute > 0),
  signup_credits integer not null default 0 constraint plans_signup_credits_non_negative check (signup_credits >= 0),
  is_metered boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table public.plans is 'Subscription plans. A higher rank unlocks everything a lower rank has (models, premium templates).';
comment on column public.plans.id is 'Stable plan key: free, paid, pro.';
comment on column public.plans.rank is 'Ordering of plans; a model or template gated at plan X is open to every plan with rank >= X.rank.';
comment on column public.plans.max_active_jobs is 'How many of a user''s jobs may be pending or generating at once.';
comment on column public.plans.starts_per_minute is 'How many generations a user may start in any 60-second window.';
comment on column public.plans.signup_credits is 'Credits granted once when a profile starts on this plan (the free plan''s welcome grant).';
comment on column public.plans.is_metered is 'Whether generations are charged in credits on this plan.';
comment on column public.plans.name is 'Display name.';
comment on column public.plans.created_at is 'When the row was created.';
comment on column public.plans.updated_at is 'Last change (kept by a trigger).';

create trigger plans_touch_updated_at before update on public.plans
  for each row execute function private.touch_updated_at();

insert into public.plans (id, name, rank, max_active_jobs, starts_per_minute, signup_credits, is_metered) values
  ('free', 'Free', 0, 2, 5, 10, true),
  ('paid', 'Paid', 1, 4, 15, 0, true),
  ('pro', 'Pro', 2, 8, 30, 0, true);

-- ---------------------------------------------------------------------------------------------
-- models: the KIE catalog. One active model per (mode, quality) is what start_generation picks.
-- ---------------------------------------------------------------------------------------------
create table public.models (
  key text primary key constraint models_key_format check (key ~ '^[a-z][a-z0-9-]{0,39}$'),
  display_name text not null,
  kie_model text not null constraint models_kie_model_not_blank check (btrim(kie_model) <> ''),
  mode text not null constraint models_mode_valid check (mode in ('text-to-image', 'image-to-image')),
  quality text not null constraint models_quality_valid check (quality in ('fast', 'standard', 'ultra')),
  credit_cost integer not null constraint models_credit_cost_positive check (credit_cost > 0),
  min_plan text not null references public.plans (id),
  image_input_field text,
  min_input_images integer not null default 0 constraint models_min_input_images_non_negative check (min_input_images >= 0),
  max_input_images integer not null default 0 constraint models_max_input_images_non_negative check (max_input_images >= 0),
  max_prompt_length integer not null constraint models_max_prompt_length_positive check (max_prompt_length > 0),
  aspect_ratios text[] not null constraint models_aspect_ratios_not_empty check (cardinality(aspect_ratios) > 0),
  is_active boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint models_image_input_matches_mode check (
    (mode = 'text-to-image' and image_input_field is null and min_input_images = 0 and max_input_images = 0)
    or (mode = 'image-to-image' and image_input_field is not null and max_input_images > 0)
  ),
  constraint models_input_image_bounds check (min_input_images <= max_input_images)
);
create unique index models_one_active_per_mode_quality on public.models (mode, quality) where is_active;
create index models_min_plan_idx on public.models (min_plan);

comment on table public.models is 'The image models offered, as data: KIE model id, price, plan gate and input limits.';
comment on column public.models.key is 'Stable model key used by the app and in jobs.';
comment on column public.models.kie_model is 'KIE model id sent as createTask.model.';
comment on column public.models.mode is 'text-to-image (a prompt) or image-to-image (a template and the user''s photos).';
comment on column public.models.quality is 'fast, standard or ultra: with mode, selects the model.';
comment on column public.models.credit_cost is 'Credits charged per generation.';
comment on column public.models.min_plan is 'The lowest plan that may use this model.';
comment on column public.models.image_input_field is 'KIE input field that carries the input image URLs (image-to-image only).';
comment on column public.models.min_input_images is 'Fewest input images KIE needs for this model (nano-banana-edit requires one).';
comment on column public.models.max_input_images is 'Most input images KIE accepts for this model.';
comment on column public.models.max_prompt_length is 'Longest prompt KIE accepts, in characters, after the style fragment is added.';
comment on column public.models.aspect_ratios is 'Aspect ratios KIE accepts for this model.';
comment on column public.models.is_active is 'Inactive models are hidden and cannot be used.';
comment on column public.models.display_name is 'Name shown in the app (Nano Edit, Imagen 4, ...).';
comment on column public.models.created_at is 'When the row was created.';
comment on column public.models.updated_at is 'Last change (kept by a trigger).';

create trigger models_touch_updated_at before update on public.models
  for each row execute function private.touch_updated_at();

insert into public.models
  (key, display_name, kie_model, mode, quality, credit_cost, min_plan, image_input_field, min_input_images, max_input_images,
   max_prompt_length, aspect_ratios)
values
  ('nano-edit', 'Nano Edit', 'google/nano-banana-edit', 'image-to-image', 'fast', 1, 'free', 'image_urls', 1, 10, 5000,
   '{1:1,9:16,16:9,3:4,4:3,3:2,2:3,5:4,4:5,21:9,auto}'),
  ('nano-pro', 'Nano Pro', 'nano-banana-pro', 'image-to-image', 'standard', 4, 'paid', 'image_input', 0, 8, 10000,
   '{1:1,2:3,3:2,3:4,4:3,4:5,5:4,9:16,16:9,21:9,auto}'),
  ('imagen-fast', 'Imagen Fast', 'google/imagen4-fast', 'text-to-image', 'fast', 1, 'free', null, 0, 0, 5000,
   '{1:1,16:9,9:16,3:4,4:3}'),
  ('imagen-4', 'Imagen 4', 'google/imagen4', 'text-to-image', 'standard', 2, 'paid', null, 0, 0, 5000,
   '{1:1,16:9,9:16,3:4,4:3}'),
  ('imagen-ultra', 'Imagen Ultra', 'google/imagen4-ultra', 'text-to-image', 'ultra', 4, 'pro', null, 0, 0, 5000,
   '{1:1,16:9,9:16,3:4,4:3}');

-- ---------------------------------------------------------------------------------------------
-- styles: presets for the Create tab's style picker; the fragment is appended to the prompt.
-- ---------------------------------------------------------------------------------------------
create table public.styles (
  key text primary key constraint styles_key_format check (key ~ '^[a-z][a-z0-9-]{0,39}$'),
  name text not null,
  prompt_fragment text not null constraint styles_prompt_fragment_not_blank check (btrim(prompt_fragment) <> ''),
  thumbnail_url text,
  "order" integer not null default 0,
  is_active boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table public.styles is 'Style presets for text-to-image; the chosen preset''s fragment is appended to the prompt.';
comment on column public.styles.prompt_fragment is 'Phrase appended to the prompt after a comma, e.g. "cinematic lighting, 35mm film".';
comment on column public.styles."order" is 'Display order in the style picker (ascending).';
comment on column public.styles.key is 'Stable style key, passed as start_generation(style => ...).';
comment on column public.styles.name is 'Display name.';
comment on column public.styles.thumbnail_url is 'Preview image for the picker.';
comment on column public.styles.is_active is 'Inactive styles are hidden and cannot be used.';
comment on column public.styles.created_at is 'When the row was created.';
comment on column public.styles.updated_at is 'Last change (kept by a trigger).';

create trigger styles_touch_updated_at before update on public.styles
  for each row execute function private.touch_updated_at();

-- ---------------------------------------------------------------------------------------------
-- Row level security: everyone may read what is active (and plans); nobody writes through the API.
-- ---------------------------------------------------------------------------------------------
alter table public.plans enable row level security;
alter table public.models enable row level security;
alter table public.styles enable row level security;

grant select on public.plans, public.models, public.styles to anon, authenticated;

create policy "Anyone can read plans" on public.plans for select to anon, authenticated using (true);
create policy "Anyone can read active models" on public.models for select to anon, authenticated using (is_active);
create policy "Anyone can read active styles" on public.styles for select to anon, authenticated using (is_active);
