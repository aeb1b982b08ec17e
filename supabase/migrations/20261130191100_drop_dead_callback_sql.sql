-- Why: dead code. private.verify_callback_token was called only by tests (the callback function
-- compares the token itself, through callback_target, and with a different length rule);
-- private.job_deadline_seconds has had no caller since enqueue_job writes the deadline out.

drop function private.verify_callback_token(uuid, integer, text);
drop function private.job_deadline_seconds(text);

select private.pin_search_paths();
