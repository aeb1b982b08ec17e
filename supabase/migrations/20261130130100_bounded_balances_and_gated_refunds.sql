-- Why: two money paths could fail in ways callers cannot handle. A refund checked "no refund yet"
-- and then inserted, so a concurrent duplicate (a late callback racing a timeout tick) died on the
-- unique (job_id, kind) key with 23505 and would abort a whole tick batch; now the insert of the
-- refund entry is the gate: it either claims the key or does nothing, and only a claimed entry
-- moves the balance. And grant_credits overflowed on -2147483648 (abs) or on a grant past the
-- integer range, surfacing a raw 22003; amounts are now bounded without arithmetic (KL025) and
-- balances are computed in bigint and capped (KL032).

-- The one way to move credits. Returns the new entry; null when the balance would go below zero
-- (the caller raises its own error) or when the job already has its refund. The profile row lock
-- serializes every movement of one user's balance, so balance_after is exact.
create or replace function private.post_ledger_entry(
  user_id uuid, kind text, amount integer, reason text, job_id uuid default null, idempotency_key text default null
)
returns public.credit_ledger
language plpgsql volatile
set search_path = ''
as $$
#variable_conflict use_column
declare
  new_balance bigint;
  entry public.credit_ledger;
begin
  -- The same lock the balance update takes (it does not wait for rows that merely reference the
  -- profile), taken first so the balance read here is the one this entry chains onto.
  select p.credits::bigint + post_ledger_entry.amount into new_balance
    from public.profiles p where p.id = post_ledger_entry.user_id for no key update;
  if not found or new_balance < 0 then
    return null;
  end if;
  -- Grants stop at the cap; refunds give back what was charged and adjustments only lower a
  -- balance, so neither is refused by it, but nothing may pass the integer range.
  if new_balance > 2147483647 or (post_ledger_entry.kind = 'grant' and new_balance > 1000000000) then
    perform private.raise_error('KL032', 'balance limit reached',
      format('this would bring the balance to %s; at most 1000000000', new_balance), 'Grant less.');
  end if;
  if post_ledger_entry.kind = 'refund' then
    -- A job's refund happens once: a duplicate (even a concurrent one) finds the key taken and
    -- inserts nothing, so it moves nothing and raises nothing. (The conflict target names
    -- columns, hence use_column above; every variable here is qualified.)
    insert into public.credit_ledger (user_id, kind, amount, balance_after, job_id, reason, idempotency_key)
    values (post_ledger_entry.user_id, post_ledger_entry.kind, post_ledger_entry.amount, new_balance::integer,
            post_ledger_entry.job_id, post_ledger_entry.reason, post_ledger_entry.idempotency_key)
    on conflict (job_id, kind) where job_id is not null do nothing
    returning * into entry;
    if not found then
      return null;
    end if;
  else
    insert into public.credit_ledger (user_id, kind, amount, balance_after, job_id, reason, idempotency_key)
    values (post_ledger_entry.user_id, post_ledger_entry.kind, post_ledger_entry.amount, new_balance::integer,
            post_ledger_entry.job_id, post_ledger_entry.reason, post_ledger_entry.idempotency_key)
    returning * into entry;
  end if;
  update public.profiles p set credits = entry.balance_after where p.id = post_ledger_entry.user_id;
  return entry;
end
$$;
comment on function private.post_ledger_entry(uuid, text, integer, text, uuid, text) is
  'API: Private. Moves a balance and appends the ledger entry; null when the balance would go negative or the job is already refunded; KL032 past the balance cap.';

-- Refunds a failed job's charge exactly once. Ticks and callbacks may both call it, at the same
-- moment: the refund entry's unique (job_id, kind) decides, so every call but one does nothing.
create or replace function private.refund_job(job_id uuid, reason text)
returns void
language plpgsql volatile
set search_path = ''
as $$
declare
  job_status text;
  job_user_id uuid;
  charged integer;
begin
  select j.status, j.user_id, j.credits_charged into job_status, job_user_id, charged
    from public.generation_jobs j where j.id = refund_job.job_id;
  if job_status is distinct from 'failed' then
    perform private.raise_error('KL031', 'only a failed job can be refunded',
      format('job %s is %s', refund_job.job_id, coalesce(job_status, 'missing')), null);
  end if;
  if charged > 0 then
    perform private.post_ledger_entry(job_user_id, 'refund', charged, refund_job.reason, refund_job.job_id);
  end if;
end
$$;
comment on function private.refund_job(uuid, text) is
  'API: Private. Refunds a failed job''s credits once; any further call, concurrent or late, does nothing. KL031 for a job that has not failed.';

-- Security definer: the service role has no rights on private; the function is its only door.
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
  'Service role only. Grants (positive) or adjusts down (negative) a user''s credits with a ledger entry, at most 1,000,000 either way and up to a balance of 1,000,000,000; the same idempotency key never applies twice.';
