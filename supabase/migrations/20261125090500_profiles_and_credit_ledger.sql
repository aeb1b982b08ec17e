-- Why: credits are money. A profile's balance changes only through one private function that
-- moves the balance with a conditional update and appends a ledger entry in the same statement
-- sequence; the ledger is append-only and chained (each entry's balance_after = previous +
-- amount), and a deferred check at commit refuses any balance that disagrees with its ledger.
-- So "credits = sum of the ledger" holds by construction, not by convention.

create table public.profiles (
  id uuid primary key references auth.users (id) on delete cascade,
  plan text not null default 'free' references public.plans (id),
  credits integer not null default 0 constraint profiles_credits_non_negative check (credits >= 0),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index profiles_plan_idx on public.profiles (plan);

comment on table public.profiles is 'One per user: plan and credit balance. Changed only through functions (start_generation, grant_credits, set_plan).';
comment on column public.profiles.id is 'The auth.users id.';
comment on column public.profiles.plan is 'Current plan (free, paid, pro).';
comment on column public.profiles.credits is 'Current balance; always equals the sum of the user''s credit_ledger amounts.';
comment on column public.profiles.created_at is 'When the profile was created (at signup).';
comment on column public.profiles.updated_at is 'Last change (kept by a trigger).';

create trigger profiles_touch_updated_at before update on public.profiles
  for each row execute function private.touch_updated_at();

create table public.credit_ledger (
  id bigint generated always as identity primary key,
  user_id uuid not null references public.profiles (id) on delete cascade,
  kind text not null constraint credit_ledger_kind_valid check (kind in ('grant', 'debit', 'refund', 'adjustment')),
  amount integer not null,
  balance_after integer not null constraint credit_ledger_balance_after_non_negative check (balance_after >= 0),
  job_id uuid,
  reason text not null constraint credit_ledger_reason_not_blank check (btrim(reason) <> ''),
  idempotency_key text,
  created_at timestamptz not null default now(),
  constraint credit_ledger_amount_sign check (
    (kind = 'debit' and amount < 0) or (kind in ('grant', 'refund') and amount > 0) or (kind = 'adjustment' and amount <> 0)
  ),
  constraint credit_ledger_job_entries_name_a_job check ((kind in ('debit', 'refund')) = (job_id is not null))
);
-- One debit and at most one refund per job; one entry per user and idempotency key.
create unique index credit_ledger_one_entry_per_job_and_kind on public.credit_ledger (job_id, kind) where job_id is not null;
create unique index credit_ledger_user_idempotency_key on public.credit_ledger (user_id, idempotency_key) where idempotency_key is not null;
create index credit_ledger_user_id_idx on public.credit_ledger (user_id, id desc);

comment on table public.credit_ledger is 'Append-only history of every credit movement. A user''s balance is the sum of their amounts.';
comment on column public.credit_ledger.kind is 'grant (welcome or operator grant), debit (a job started), refund (a job failed), adjustment (operator correction).';
comment on column public.credit_ledger.amount is 'Signed change: negative for debits and negative adjustments.';
comment on column public.credit_ledger.balance_after is 'The balance right after this entry.';
comment on column public.credit_ledger.job_id is 'The generation job a debit or refund belongs to.';
comment on column public.credit_ledger.reason is 'Human-readable reason, shown in the app''s credit history.';
comment on column public.credit_ledger.idempotency_key is 'The same key never grants twice; system:signup marks the welcome grant.';
comment on column public.credit_ledger.id is 'Entry number; increases with time for each user.';
comment on column public.credit_ledger.user_id is 'Whose balance moved.';
comment on column public.credit_ledger.created_at is 'When the entry was written.';

-- ---------------------------------------------------------------------------------------------
-- Invariants
-- ---------------------------------------------------------------------------------------------
create function private.credit_ledger_chain()
returns trigger
language plpgsql volatile
set search_path = ''
as $$
declare
  previous_balance integer;
begin
  select balance_after into previous_balance from public.credit_ledger
   where user_id = new.user_id order by id desc limit 1;
  if coalesce(previous_balance, 0) + new.amount <> new.balance_after then
    raise exception 'credit ledger chain broken for user %: % + % <> %',
      new.user_id, coalesce(previous_balance, 0), new.amount, new.balance_after;
  end if;
  return new;
end
$$;
comment on function private.credit_ledger_chain() is 'API: Private. Trigger: each entry''s balance_after must be the previous balance plus its amount.';

create trigger credit_ledger_chain before insert on public.credit_ledger
  for each row execute function private.credit_ledger_chain();

-- Rows are never updated; they are deleted only with their account (the profile cascade).
-- Security definer so the refusal raises its documented code whoever the writer is.
create function private.credit_ledger_append_only()
returns trigger
language plpgsql volatile security definer
set search_path = ''
as $$
begin
  if tg_op = 'DELETE' and not exists (select 1 from public.profiles where id = old.user_id) then
    return old;
  end if;
  perform private.raise_error('KL026', 'the credit ledger is append-only',
    format('%s of ledger entry %s refused', lower(tg_op), coalesce(old.id::text, 'rows')),
    'Correct a balance with grant_credits (a new entry), never by editing history.');
  return null;
end
$$;
comment on function private.credit_ledger_append_only() is 'API: Private. Trigger: refuses updates, deletes and truncates of ledger entries (KL026).';

create trigger credit_ledger_append_only before update or delete on public.credit_ledger
  for each row execute function private.credit_ledger_append_only();
create trigger credit_ledger_no_truncate before truncate on public.credit_ledger
  for each statement execute function private.credit_ledger_append_only();

-- Security definer: a deferred trigger runs at commit as the session's role, outside the
-- security definer function that queued it (e.g. the auth service's signup insert, which has no
-- rights on our tables); the check must read the balance and ledger whoever commits.
create function private.profiles_credits_match_ledger()
returns trigger
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  profile_id uuid;
  current_credits integer;
  ledger_balance integer;
begin
  -- Fired for a profile (its id) or for a new ledger entry (its user_id).
  if tg_table_name = 'credit_ledger' then
    profile_id := new.user_id;
  else
    profile_id := new.id;
  end if;
  -- A deferred trigger's NEW is the row as of its event; check the row as it is at commit.
  select credits into current_credits from public.profiles where id = profile_id;
  if not found then
    return null;
  end if;
  select balance_after into ledger_balance from public.credit_ledger
   where user_id = profile_id order by id desc limit 1;
  if current_credits <> coalesce(ledger_balance, 0) then
    raise exception 'profile % has % credits but its ledger says %', profile_id, current_credits, coalesce(ledger_balance, 0)
      using hint = 'Change balances only through private.post_ledger_entry (grant_credits for operators).';
  end if;
  return null;
end
$$;
comment on function private.profiles_credits_match_ledger() is 'API: Private. Deferred check: a balance must equal its ledger at commit.';

create constraint trigger profiles_credits_match_ledger after insert or update of credits on public.profiles
  deferrable initially deferred
  for each row execute function private.profiles_credits_match_ledger();
-- A ledger entry appended without moving the balance is caught too.
create constraint trigger credit_ledger_matches_profile after insert on public.credit_ledger
  deferrable initially deferred
  for each row execute function private.profiles_credits_match_ledger();

-- ---------------------------------------------------------------------------------------------
-- The one way to move credits. Returns the new entry, or null when the balance would go below
-- zero (the caller raises its own error). The conditional update locks the profile row, so
-- concurrent movements for one user are serialized and balance_after is exact.
-- ---------------------------------------------------------------------------------------------
create function private.post_ledger_entry(
  user_id uuid, kind text, amount integer, reason text, job_id uuid default null, idempotency_key text default null
)
returns public.credit_ledger
language plpgsql volatile
set search_path = ''
as $$
declare
  new_balance integer;
  entry public.credit_ledger;
begin
  update public.profiles p
     set credits = p.credits + post_ledger_entry.amount
   where p.id = post_ledger_entry.user_id
     and p.credits + post_ledger_entry.amount >= 0
  returning p.credits into new_balance;
  if not found then
    return null;
  end if;
  insert into public.credit_ledger (user_id, kind, amount, balance_after, job_id, reason, idempotency_key)
  values (post_ledger_entry.user_id, post_ledger_entry.kind, post_ledger_entry.amount, new_balance,
          post_ledger_entry.job_id, post_ledger_entry.reason, post_ledger_entry.idempotency_key)
  returning * into entry;
  return entry;
end
$$;
comment on function private.post_ledger_entry(uuid, text, integer, text, uuid, text) is
  'API: Private. Moves a balance and appends the ledger entry; null when the balance would go negative.';

-- ---------------------------------------------------------------------------------------------
-- Every new auth user gets a profile on the free plan. The welcome grant goes to real accounts:
-- an anonymous sign-in (auth.users.is_anonymous) gets it when it converts to a permanent
-- account, so throwaway anonymous sessions cannot farm free credits. The ledger's idempotency
-- key makes the grant happen once per user whichever path reaches it first.
-- ---------------------------------------------------------------------------------------------
create function private.grant_welcome_credits(user_id uuid)
returns void
language plpgsql volatile
set search_path = ''
as $$
declare
  welcome integer;
begin
  select signup_credits into welcome from public.plans where id = 'free';
  if welcome > 0 and not exists (
    select 1 from public.credit_ledger l
     where l.user_id = grant_welcome_credits.user_id and l.idempotency_key = 'system:signup'
  ) then
    perform private.post_ledger_entry(grant_welcome_credits.user_id, 'grant', welcome, 'Welcome credits', null, 'system:signup');
  end if;
end
$$;
comment on function private.grant_welcome_credits(uuid) is 'API: Private. Grants the free plan''s signup credits once per user.';

-- Security definer: runs for writes made by the auth service, which has no rights on our schemas.
create function private.create_profile_for_new_user()
returns trigger
language plpgsql volatile security definer
set search_path = ''
as $$
begin
  insert into public.profiles (id, plan) values (new.id, 'free');
  if not new.is_anonymous then
    perform private.grant_welcome_credits(new.id);
  end if;
  return new;
end
$$;
comment on function private.create_profile_for_new_user() is
  'API: Private. Trigger on auth.users: creates the profile; permanent accounts get the welcome credits.';

create trigger on_auth_user_created after insert on auth.users
  for each row execute function private.create_profile_for_new_user();

-- Security definer: see create_profile_for_new_user.
create function private.welcome_converted_user()
returns trigger
language plpgsql volatile security definer
set search_path = ''
as $$
begin
  perform private.grant_welcome_credits(new.id);
  return new;
end
$$;
comment on function private.welcome_converted_user() is
  'API: Private. Trigger on auth.users: an anonymous user who becomes permanent gets the welcome credits.';

create trigger on_auth_user_converted after update of is_anonymous on auth.users
  for each row when (old.is_anonymous and not new.is_anonymous)
  execute function private.welcome_converted_user();

-- ---------------------------------------------------------------------------------------------
-- Operator functions (service role only).
-- ---------------------------------------------------------------------------------------------
-- Security definer: the service role has no rights on private; the function is its only door.
create function public.grant_credits(user_id uuid, amount integer, reason text, idempotency_key text default null)
returns public.credit_ledger
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  existing public.credit_ledger;
  entry public.credit_ledger;
begin
  if amount is null or amount = 0 or abs(amount) > 1000000 then
    perform private.raise_error('KL025', 'amount must be a non-zero integer between -1000000 and 1000000', null,
      'Positive amounts grant, negative amounts adjust down.');
  end if;
  if reason is null or btrim(reason) = '' then
    perform private.raise_error('KL025', 'reason is required', null, 'Say why the balance changes; users see it in their history.');
  end if;
  if idempotency_key is not null
     and (btrim(idempotency_key) = '' or length(idempotency_key) > 200 or idempotency_key like 'system:%') then
    perform private.raise_error('KL027', 'invalid idempotency key', 'use 1 to 200 characters, not starting with "system:"',
      'Keys starting with "system:" are reserved for grants the database makes itself.');
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
comment on function public.grant_credits(uuid, integer, text, text) is
  'Service role only. Grants (positive) or adjusts down (negative) a user''s credits with a ledger entry; the same idempotency key never applies twice.';
revoke execute on function public.grant_credits(uuid, integer, text, text) from public, anon, authenticated;
grant execute on function public.grant_credits(uuid, integer, text, text) to service_role;

-- Security definer: see grant_credits.
create function public.set_plan(user_id uuid, plan text)
returns public.profiles
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  updated public.profiles;
begin
  if not exists (select 1 from public.plans where id = set_plan.plan) then
    perform private.raise_error('KL025', 'unknown plan', format('plan %s does not exist', coalesce(set_plan.plan, 'null')),
      (select 'plans: ' || string_agg(id, ', ' order by rank) from public.plans));
  end if;
  update public.profiles p set plan = set_plan.plan where p.id = set_plan.user_id returning * into updated;
  if not found then
    perform private.raise_error('KL025', 'unknown user', format('no profile %s', set_plan.user_id), null);
  end if;
  return updated;
end
$$;
comment on function public.set_plan(uuid, text) is 'Service role only. Moves a user to another plan.';
revoke execute on function public.set_plan(uuid, text) from public, anon, authenticated;
grant execute on function public.set_plan(uuid, text) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Access: users read their own profile and ledger; nobody writes through the API.
-- ---------------------------------------------------------------------------------------------
alter table public.profiles enable row level security;
alter table public.credit_ledger enable row level security;
grant select on public.profiles, public.credit_ledger to authenticated;
-- The service role reads everything but writes balances only through the functions above.
revoke all on public.profiles, public.credit_ledger from service_role;
revoke all on sequence public.credit_ledger_id_seq from service_role;
grant select on public.profiles, public.credit_ledger to service_role;

-- Accounts that existed before this migration get their profile (and welcome credits) too.
insert into public.profiles (id, plan) select u.id, 'free' from auth.users u on conflict (id) do nothing;
select private.grant_welcome_credits(u.id) from auth.users u where not u.is_anonymous;

create policy "Users can read their own profile" on public.profiles
  for select to authenticated using (id = (select auth.uid()));
create policy "Users can read their own credit ledger" on public.credit_ledger
  for select to authenticated using (user_id = (select auth.uid()));
