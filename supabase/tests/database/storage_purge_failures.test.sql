-- What goes wrong in the Storage purges stays visible and contained: how the previous delete
-- request failed (or that it got no answer) is kept in last_error; a part of the retention tick that fails raises
-- retention_error while the other parts still run; an upload whose name ends in a slash is
-- purged like any other; a job protects only uploads in its owner's folder; finished upload
-- purges are forgotten after the request log's retention; one request names 1 to 1000 objects.
begin;
select plan(17);
\ir storage_purge_fixture.sql
select now() as t0 \gset

-- The previous request was refused (a rotated service key): the next visit says so.
select tests.sign_up_as_auth_service('pf_gone') as gone \gset
select pg_temp.put_object('generated-images', :'gone' || '/job/d/0.png');
select tests.delete_as_auth_service(:'gone');
select private.purge_account_storage(:'t0');
insert into net._http_response (id, status_code, content, created)
select last_request_id, 401, '{"statusCode":"403","error":"Unauthorized","message":"invalid signature"}', :'t0'::timestamptz + interval '1 second'
  from private.storage_purges where user_id = :'gone' and bucket_id = 'generated-images';
select private.purge_account_storage(:'t0'::timestamptz + interval '30 seconds');
select is((select last_error from private.storage_purges where user_id = :'gone' and bucket_id = 'generated-images'),
  'the Storage API answered the last delete request with 401: {"statusCode":"403","error":"Unauthorized","message":"invalid signature"}',
  'a refused request is named in last_error at the next visit');
select is((select count(*)::int from private.pending_storage_purges where user_id = :'gone' and last_error like '%401%'), 1,
  'and operators see it in pending_storage_purges');

-- An upload purge whose request timed out.
select tests.create_supabase_user('pf_owner') as owner \gset
select pg_temp.put_object('user-uploads', :'owner' || '/old.png', '8 days');
select private.expire_uploads(:'t0');
select private.purge_expired_uploads(:'t0');
select last_request_id as first_request from private.storage_purges where path = :'owner' || '/old.png' \gset
insert into net._http_response (id, timed_out, error_msg, created)
values (:first_request, true, 'Timeout of 10000 ms reached', :'t0'::timestamptz + interval '10 seconds');
select private.purge_expired_uploads(:'t0'::timestamptz + interval '30 seconds');
select is((select last_error from private.storage_purges where path = :'owner' || '/old.png'),
  'the last delete request failed: Timeout of 10000 ms reached', 'a timed-out upload delete is named too');

-- A response older than the request is another request's (pg_net reuses ids after a crash).
select is(private.storage_delete_problem(:first_request, :'t0'::timestamptz + interval '1 hour'),
  'the last delete request is still waiting in pg_net''s queue',
  'an answer from before the request is not read as its answer: the request reads as unanswered, here still queued');
-- No answer and no longer queued: lost (a crash empties pg_net's unlogged queue). Not a success,
-- as it read before: a stuck or restarted pg_net must show in last_error and in the alert.
delete from net.http_request_queue where id = :first_request;
select is(private.storage_delete_problem(:first_request, :'t0'::timestamptz + interval '1 hour'),
  'the last delete request got no answer (pg_net lost it)', 'a request neither queued nor answered was lost');
select is(private.storage_delete_problem(-1, now() - interval '61 minutes'), null,
  'unless it was sent longer ago than pg_net keeps answers (an hour): its answer may be gone, so nothing is known');

-- A name that ends in a slash (the real Storage API accepts it) is an upload like any other.
select pg_temp.storage_deletes('user-uploads', '%');
update private.storage_purges set done_at = now() where done_at is null;
update private.upload_sweep set after_name = null, pass_started_at = null;
select pg_temp.put_object('user-uploads', :'owner' || '/folder/', '8 days');
select pg_temp.put_object('user-uploads', :'owner' || '/', '8 days');
select is(private.expire_uploads(:'t0'), 2, 'uploads named <uid>/folder/ and <uid>/ expire');
select tests.delete_as_auth_service(:'owner');
select is((select count(*)::int from private.storage_purges where path = :'owner' || '/' and done_at is null), 3,
  'the account purge of the same user''s folder is recorded beside the upload purge of an object named like it');
select is(private.purge_expired_uploads(:'t0'), 1, 'their purge is sent');

-- A job protects only uploads in its owner's folder.
select pg_temp.storage_deletes('user-uploads', '%');
update private.storage_purges set done_at = now() where done_at is null;
update private.upload_sweep set after_name = null, pass_started_at = null;
select tests.create_supabase_user('pf_victim') as victim \gset
select pg_temp.put_object('user-uploads', :'victim' || '/own.png', '8 days');
select pg_temp.job_listing('pf_other', 'pending',
  array[format('https://ref.supabase.co/storage/v1/object/sign/user-uploads/%s/own.png?token=x', :'victim')]);
select is(private.expire_uploads(:'t0'), 1, 'another user''s pending job does not keep an upload alive');

-- Finished upload purges are forgotten after housekeeping.request_log_retention_seconds (30 days).
update private.storage_purges set done_at = :'t0'::timestamptz - interval '31 days' where path = :'victim' || '/own.png';
insert into private.storage_purges (bucket_id, path, user_id, reason, requested_at, next_attempt_at, done_at)
values ('user-uploads', :'victim' || '/recent.png', :'victim', 'upload_expired', :'t0', :'t0', :'t0'::timestamptz - interval '29 days');
select private.purge_expired_uploads(:'t0');
select results_eq(format($$ select path from private.storage_purges where user_id = '%s' $$, :'victim'),
  format($$ values ('%s/recent.png') $$, :'victim'), 'a purge done 31 days ago is forgotten, one done 29 days ago kept');

-- One request names 1 to 1000 objects.
select throws_ok($$ select private.send_storage_delete('user-uploads', '{}') $$, 'KL052', 'invalid batch size', 'no names: refused');
select throws_ok($$ select private.send_storage_delete('user-uploads', array(select g::text from generate_series(1, 1001) g)) $$,
  'KL052', 'invalid batch size', 'over 1000 names: refused');

-- A 200 that deleted nothing (the anon key in service_role_key: the API leaves out what the
-- key may not delete) is named too.
select tests.sign_up_as_auth_service('pf_anon') as anon \gset
select pg_temp.put_object('generated-images', :'anon' || '/job/d/0.png');
select tests.delete_as_auth_service(:'anon');
select private.purge_account_storage(:'t0');
insert into net._http_response (id, status_code, content, created)
select last_request_id, 200, '[]', :'t0'::timestamptz + interval '1 second'
  from private.storage_purges where user_id = :'anon' and bucket_id = 'generated-images';
select private.purge_account_storage(:'t0'::timestamptz + interval '30 seconds');
select is((select last_error from private.storage_purges where user_id = :'anon' and bucket_id = 'generated-images'),
  'the Storage API deleted none of the names it was sent (is service_role_key the service_role key?)',
  'a 200 that deleted none of the names is named');

-- Parts of the tick that fail are named in one retention_error alert; the others still run; a
-- run where every part ran clears it.
select tests.sign_up_as_auth_service('pf_late') as late \gset
select pg_temp.put_object('generated-images', :'late' || '/job/d/0.png');
select tests.delete_as_auth_service(:'late');
select tests.create_supabase_user('pf_after') as after_owner \gset
select pg_temp.put_object('user-uploads', :'after_owner' || '/old.png', '8 days');
update private.upload_sweep set after_name = null, pass_started_at = null;
-- Unreadable settings make the folder purge, the upload purge and the delivery purge fail (the
-- last two forget finished purges after the request log's retention; the trigger refuses such
-- values; a superuser bypassing it stands in for any row or setting a part cannot read).
alter table private.settings disable trigger settings_values_valid;
update private.settings set value = '"an hour"' where key = 'storage.deleted_account_watch_seconds';
update private.settings set value = '"a month"' where key = 'housekeeping.request_log_retention_seconds';
select private.results_retention_tick(:'t0'::timestamptz + interval '1 minute');
select is((select array_agg(p ->> 'part') from private.alerts a, jsonb_array_elements(a.details -> 'parts') p
            where a.key = 'retention_error' and a.cleared_at is null), array['purge_discarded_deliveries', 'purge_account_storage', 'purge_expired_uploads'],
  'every failing part is named in the retention_error alert');
select is((select count(*)::int from private.storage_purges where path = :'after_owner' || '/old.png' and done_at is null), 1,
  'and the walk between them still ran');
update private.settings set value = '3600' where key = 'storage.deleted_account_watch_seconds';
update private.settings set value = '2592000' where key = 'housekeeping.request_log_retention_seconds';
alter table private.settings enable trigger settings_values_valid;
select private.results_retention_tick(:'t0'::timestamptz + interval '2 minutes');
select is_empty($$ select 1 from private.alerts where key = 'retention_error' and cleared_at is null $$,
  'a run where every part ran clears the alert');

select * from finish();
rollback;
