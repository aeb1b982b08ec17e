-- Why: grant_credits (service role) refused an idempotency key made of spaces (KL027) but took one
-- made of other white space or invisible characters (a tab, a line feed, a no-break or zero-width
-- space, a Hangul filler), and the same for the reason (KL025 "reason is required"): the test was
-- btrim, which only strips spaces. Such a key is blank by the rule start_generation follows since
-- 20261203210000 (private.is_blank), and worse than none: a tool that sent the same blank key for
-- every grant to one user had every later grant of the same amount answered with the first entry
-- (nothing granted) and every other amount refused as a conflict (KL019). A reason with nothing
-- visible shows users an empty line in their history. Both are now refused the way spaces were,
-- with the same codes, before the profile is locked; the KL027 detail says a key needs something
-- visible. Keys and reasons with something visible are kept as sent. grant_credits as in
-- 20261130130100 otherwise.

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

select private.pin_search_paths();
