-- Why: the migrations after 20261130110100 replaced or added private functions and
-- security-definer functions; pin their search_path the same way (pg_catalog first, pg_temp
-- last) so a caller's temporary types can never shadow built-in ones while they run as the
-- owner. The structure test refuses any function here that lacks it.
select private.pin_search_paths();
