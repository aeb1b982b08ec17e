-- Replacing an upload cannot turn it into a result: moving one of a user's own uploads into the
-- generated-images bucket is refused by the update policy's check. The update names no column
-- outside SET, so only the update policy judges the new row (a WHERE would also apply the read
-- policies to it, which hide it for another reason).
begin;
select plan(2);

select tests.create_supabase_user('suu_a');
select tests.get_supabase_uid('suu_a') as a \gset
insert into storage.objects (bucket_id, name, owner, owner_id) values ('user-uploads', :'a' || '/photo.png', :'a', :'a');

select tests.authenticate_as('suu_a');
select throws_ok(
  format($$ update storage.objects set bucket_id = 'generated-images', name = '%s/%s/d1/0.png' $$, :'a', gen_random_uuid()),
  '42501', null, 'a user cannot move their upload into generated-images');
select tests.act_as_owner();
select results_eq(
  format($$ select bucket_id from storage.objects where name like '%s/%%' $$, :'a'),
  $$ values ('user-uploads'::text) $$, 'the upload is still an upload');

select * from finish();
rollback;
