-- Why: the ledger's invariant guards raised a bare P0001, so neither a caller nor a test could
-- tell which one fired. Each guard now raises its own documented code: KL029 for an entry that
-- does not follow the chain, KL030 for a balance that disagrees with its ledger at commit.

create or replace function private.credit_ledger_chain()
returns trigger
language plpgsql volatile
set search_path = ''
as $$
declare
  previous_balance integer;
begin
  select l.balance_after into previous_balance from public.credit_ledger l
   where l.user_id = new.user_id order by l.id desc limit 1;
  if coalesce(previous_balance, 0)::bigint + new.amount <> new.balance_after then
    perform private.raise_error('KL029', 'credit ledger chain broken',
      format('user %s: %s + %s <> %s', new.user_id, coalesce(previous_balance, 0), new.amount, new.balance_after),
      'Move balances only through private.post_ledger_entry (grant_credits for operators).');
  end if;
  return new;
end
$$;
comment on function private.credit_ledger_chain() is
  'API: Private. Trigger: each entry''s balance_after must be the previous balance plus its amount (KL029).';

-- Security definer: a deferred trigger runs at commit as the session's role, outside the
-- security definer function that queued it (e.g. the auth service's signup insert, which has no
-- rights on our tables); the check must read the balance and ledger whoever commits.
create or replace function private.profiles_credits_match_ledger()
returns trigger
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
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
  select p.credits into current_credits from public.profiles p where p.id = profile_id;
  if not found then
    return null;
  end if;
  select l.balance_after into ledger_balance from public.credit_ledger l
   where l.user_id = profile_id order by l.id desc limit 1;
  if current_credits <> coalesce(ledger_balance, 0) then
    perform private.raise_error('KL030', 'balance does not match the credit ledger',
      format('profile %s has %s credits but its ledger says %s', profile_id, current_credits, coalesce(ledger_balance, 0)),
      'Change balances only through private.post_ledger_entry (grant_credits for operators).');
  end if;
  return null;
end
$$;
comment on function private.profiles_credits_match_ledger() is
  'API: Private. Deferred check: a balance must equal its ledger at commit (KL030).';
