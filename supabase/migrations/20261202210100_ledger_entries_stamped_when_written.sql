-- Why: a ledger entry's created_at was now(), the start of the transaction that wrote it, not
-- when it was written. Entries of one user are written one at a time (each takes the profile's
-- lock first, and ids follow that order), but a transaction that started earlier can take the
-- lock later: a tick that began before a user's start and refunded one of their jobs after that
-- start committed wrote the refund with a higher id and an earlier created_at than the start's
-- debit. A credit history sorted by date then showed the refund before the debit, with
-- balance_after going 9, 8 where the entries were written 8, 9.
--
-- clock_timestamp() is read when the row is inserted, which is after the profile's lock is held
-- (private.post_ledger_entry locks, then inserts; the lock is held to commit), so for each user
-- created_at now increases with id, as the column comments say. Rows already written keep their
-- stamps. A default change is a catalog change only: no table rewrite.

alter table public.credit_ledger alter column created_at set default clock_timestamp();

comment on column public.credit_ledger.created_at is
  'When the entry was written (after its balance was locked): for each user it increases with id, so either orders the history.';
