-- Two lists of invisible characters must agree: private.is_blank (text with nothing visible is
-- empty) and the Default_Ignorable_Code_Point part of private.moderation_text (what the blocklist
-- matcher strips). The second is read from moderation_text's own source, between its two list
-- comments, so a code point added to or dropped from either function without the other fails here.
-- Every code point is tried, surrogates excepted.
begin;
select plan(4);

create temp table ignorable as
select '[' || string_agg(piece[1], '' order by position) || ']' as class
  from pg_proc p,
       regexp_matches(substring(p.prosrc from '-- Default_Ignorable_Code_Point(.*?)-- General_Category M'), '''([^'']*)''', 'g')
         with ordinality as t(piece, position)
 where p.oid = 'private.moderation_text(text)'::regprocedure;

create temp table code_points as
select cp, chr(cp) as c, chr(cp) ~ (select class from ignorable) as ignorable, private.is_blank(chr(cp)) as blank
  from generate_series(1, 1114111) cp
 where cp not between 55296 and 57343;

-- White_Space (Unicode PropList), which is_blank also counts as blank and moderation keeps.
create temp table white_space (cp integer);
insert into white_space
select generate_series(9, 13) union all select unnest(array[32, 133, 160, 5760]) union all
select generate_series(8192, 8202) union all select unnest(array[8232, 8233, 8239, 8287, 12288]);

select cmp_ok((select count(*) from code_points where ignorable), '>', 4000::bigint,
              'the default-ignorable list is read from moderation_text');
select is(array(select to_hex(cp) from code_points where ignorable and not blank order by cp), '{}',
          'every code point moderation strips as default-ignorable is blank');
select is(array(select to_hex(cp) from code_points
                 where blank and not ignorable and cp <> 10240 and cp not in (select cp from white_space) order by cp),
          '{}', 'a blank code point is white space, U+2800 or default-ignorable, nothing else');
select ok((select bool_and(blank) from code_points where cp in (select cp from white_space) or cp = 10240),
          'white space and the blank Braille pattern are blank');

select * from finish();
rollback;
