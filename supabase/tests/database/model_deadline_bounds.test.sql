-- A model's own deadline has the global deadline's bounds (30 s to a day): the request log is kept
-- at least two days on that promise, and a running job needs its createTask row for its callback.
begin;
select plan(4);

select throws_ok($$ update private.model_requests set deadline_seconds = 259200 where model_key = 'nano-pro' $$,
  '23514', null, 'three days is refused');
select throws_ok($$ update private.model_requests set deadline_seconds = 10 where model_key = 'nano-pro' $$,
  '23514', null, 'ten seconds is refused');
select lives_ok($$ update private.model_requests set deadline_seconds = 86400 where model_key = 'nano-pro' $$, 'a day is accepted');
select lives_ok($$ update private.model_requests set deadline_seconds = null where model_key = 'nano-pro' $$,
  'no deadline of its own (the global one applies) is accepted');

select * from finish();
rollback;
