-- Why: the service role's calls sent without an argument (a script bug: PostgREST passes a JSON
-- null as SQL null) or with an empty one were refused with the right code (KL025) but a detail
-- with a blank where the value goes: grant_credits and set_plan without a user id answered "no
-- profile ", set_plan with an empty plan "plan  does not exist" (and without one "plan null does
-- not exist", naming a plan called null). The detail now says what is missing ("no user id was
-- given", "no plan was given") and quotes the plan as sent (private.error_value: plan "" does
-- not exist, a blank plan as escapes). Codes and messages are unchanged; nothing is locked for a
-- missing user id. grant_credits as in 20261203214000 and set_plan as in 20261203130000
-- otherwise.

create or replace function public.grant_credits(user_id uuid, amount integer, reason text, idempotency_key text default null)
returns public.credit_ledger
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  existing public.credit_ledger;
  entry public.credit_ledger;
begin
  -- A range test, not abs(): abs(-2147483648) itself overflows.
  if amount is null or amount = 0 or amount not between -1000000 and 1000000 then
    perform private.raise_error('KL025', 'amount must be a non-zero integer between -1000000 and 1000000',
      format('got %s', coalesce(amount::text, 'null')), 'Positive amounts grant, negative amounts adjust down.');
  end if;
  -- A reason and a key need something visible (private.is_blank: white space and invisible
  -- characters are nothing); the key's length is checked first, so a long key is not scanned.
  if reason is null or private.is_blank(reason) then
    perform private.raise_error('KL025', 'reason is required', null, 'Say why the balance changes; users see it in their history.');
  end if;
  if idempotency_key is not null
     and (length(idempotency_key) > 200 or private.is_blank(idempotency_key) or idempotency_key like 'system:%') then
    perform private.raise_error('KL027', 'invalid idempotency key',
      'use 1 to 200 characters, with something visible, not starting with "system:"',
      'Keys starting with "system:" are reserved for grants the database makes itself.');
  end if;
  -- A call without its user id (PostgREST passes a JSON null as SQL null) finds nobody; say so
  -- rather than name an empty id.
  if grant_credits.user_id is null then
    perform private.raise_error('KL025', 'unknown user', 'no user id was given', null);
  end if;
  -- Lock the profile first: a retried grant waits for the original and then sees it.
  perform 1 from public.profiles p where p.id = grant_credits.user_id for update;
  if not found then
    perform private.raise_error('KL025', 'unknown user', format('no profile %s', grant_credits.user_id), null);
  end if;
  if idempotency_key is not null then
    select * into existing from public.credit_ledger l
     where l.user_id = grant_credits.user_id and l.idempotency_key = grant_credits.idempotency_key;
    if found then
      if existing.amount <> grant_credits.amount then
        perform private.raise_error('KL019', 'idempotency key already used for a different amount',
          format('key %s granted %s', grant_credits.idempotency_key, existing.amount), 'Use a new key for a new grant.');
      end if;
      return existing;
    end if;
  end if;
  entry := private.post_ledger_entry(grant_credits.user_id, case when amount > 0 then 'grant' else 'adjustment' end,
                                     amount, reason, null, idempotency_key);
  if entry is null then
    perform private.raise_error('KL020', 'insufficient credits for this adjustment',
      format('the balance cannot go below zero (adjustment %s)', amount), null);
  end if;
  return entry;
end
$$;

create or replace function public.set_plan(user_id uuid, plan text)
returns public.profiles
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  updated public.profiles;
begin
  -- The plan's row is held (shared) to commit: its retention cannot change under this move. The
  -- plan as sent is quoted (private.error_value), so an empty or blank one shows.
  perform from public.plans pl where pl.id = set_plan.plan for share;
  if not found then
    perform private.raise_error('KL025', 'unknown plan',
      case when set_plan.plan is null then 'no plan was given'
           else format('plan %s does not exist', private.error_value(set_plan.plan, 60)) end,
      (select 'plans: ' || string_agg(id, ', ' order by rank) from public.plans));
  end if;
  -- A call without its user id finds nobody; say so rather than name an empty id.
  if set_plan.user_id is null then
    perform private.raise_error('KL025', 'unknown user', 'no user id was given', null);
  end if;
  -- The pipeline rows first, in the order the ticks and the account deletion take them: those
  -- whose expiry this moves, and those of jobs still running, which may finish (and store an
  -- expiry from the plan) while this runs.
  perform from private.job_pipeline p
   where p.job_id in (select j.id from public.generation_jobs j where j.user_id = set_plan.user_id)
     and (p.results_expire_at is not null or p.stage not in ('completed', 'failed'))
   order by p.job_id
     for update of p;
  update public.profiles p set plan = set_plan.plan where p.id = set_plan.user_id returning * into updated;
  if not found then
    perform private.raise_error('KL025', 'unknown user', format('no profile %s', set_plan.user_id), null);
  end if;
  return updated;
end
$$;

select private.pin_search_paths();
