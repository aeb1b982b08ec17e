-- Why: hosted projects no longer grant the API roles anything on new tables in `public` (the
-- Data API default-privileges change of 2026-10-30: objects created by `postgres` get no grants
-- unless a migration writes them). The service role read the catalogue tables only through
-- those old defaults; operator tools and the pipeline's Edge Function read them with the
-- service key, including inactive models and styles and unpublished templates (RLS does not
-- apply to it). Read only: the catalogue changes through migrations and the dashboard.

grant select on public.plans, public.models, public.styles, public.templates to service_role;
