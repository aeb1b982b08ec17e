-- Why: 20261201120000 made a deleted profile record the purge of the user's folders in
-- generated-images and user-uploads, but only for deletions from then on. An account deleted
-- before it kept its folders: its generated images forever (nothing else ever lists that bucket),
-- its input photos until the upload walk (20261201120100) came by them one by one. A project that
-- had deleted accounts before deploying it still holds those users' images.
--
-- Every top-level folder of those two buckets named by a user id with no profile gets the purge a
-- deletion records now (reason account_deleted), which the retention tick works through as usual:
-- it empties the folder through the Storage API and is done once the folder is found empty after
-- storage.deleted_account_watch_seconds. A folder that already has an open purge keeps it. Only
-- folders named by a user id written as Postgres writes a uuid are read (the names the app and the
-- callback function write); anything else in the buckets is left alone. One read of the two
-- buckets' names, once; applying this again records nothing for folders already emptied.

insert into private.storage_purges (bucket_id, path, user_id, reason, requested_at, next_attempt_at)
select f.bucket_id, f.folder || '/', f.folder::uuid, 'account_deleted', now(), now()
  from (select distinct o.bucket_id, pg_catalog.split_part(o.name, '/', 1) as folder
          from storage.objects o
         where o.bucket_id in ('generated-images', 'user-uploads')
           and o.name ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/') f
 where not exists (select 1 from public.profiles p where p.id = f.folder::uuid)
 order by f.bucket_id, f.folder
on conflict (bucket_id, path, reason) where done_at is null do nothing;
