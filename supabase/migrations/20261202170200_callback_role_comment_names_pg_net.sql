-- Why: the role's comment said it reaches nothing but the four callback functions. It is a login
-- role, so like any role with a SQL session it also reaches what pg_net grants to PUBLIC (the
-- request queue, headers included, and the responses), which the project cannot revoke. The
-- comment now says so; callback_role.test.sql pins the whole reach.
comment on role kiln_callback is
  'The kie-callback Edge Function''s login: of ours, executes the four callback functions in private and nothing else; '
  'like any login it also reaches pg_net''s PUBLIC grants (queued requests with their headers), so its password is as secret as the KIE key.';
