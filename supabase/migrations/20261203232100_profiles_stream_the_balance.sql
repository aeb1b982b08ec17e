-- Why: the balance was not in Realtime. The app follows its jobs through postgres_changes, but its
-- credits and plan (public.profiles) move on every start (the debit), every failed job (the
-- refund, in the same transaction as the job's failed update), every grant (a purchase through
-- grant_credits) and plan change (set_plan), and the app learned none of it without fetching the
-- profile again after each event it guessed might have moved it. A purchase made elsewhere (the
-- store's server calling grant_credits) reached an open app only on its next fetch.
--
-- The profile row is safe to stream whole, which is what Realtime sends: its columns are id,
-- plan, credits, created_at and updated_at, all of which the user already reads, and no more. RLS
-- ("Users can read their own profile") keeps each row to its owner: Realtime checks it as the
-- subscriber for inserts and updates. Replica identity stays the default: the row has no value
-- large enough to be stored out of line, so an update carries every column, and the old row of an
-- update or delete is the id alone. A delete (only when the account is deleted) is not checked
-- against RLS by Realtime, so an unfiltered subscription would see the id of another user's
-- deleted account: the README tells the app to subscribe with id=eq.<auth uid>, as it filters its
-- jobs. The credit ledger stays out: the balance is its sum, and the history is read on demand.
--
-- Adding a table to a publication takes SHARE UPDATE EXCLUSIVE on it, which starts and ticks
-- writing profiles pass; no lock_timeout is needed.

alter publication supabase_realtime add table public.profiles;

comment on table public.profiles is
  'One per user: plan and credit balance. Changed only through functions (start_generation, grant_credits, set_plan). Streamed by Realtime (supabase_realtime) to its owner: subscribe with the filter id=eq.<auth uid>.';
