-- Benchmark: the moderation blocklist (private.find_blocked_term) with 1,000 terms, against a
-- same-run baseline: the plain whole-word alternation it replaced (no folding of look-alikes,
-- plurals, leetspeak or split letters, assembled per call).
--
-- Usage: psql "$DATABASE_URL" -X -q -f scripts/bench/blocklist.sql   (e.g. against npm run stack:up)
-- Everything runs in a transaction that is rolled back; the stack's own terms are untouched.
begin;
set local client_min_messages = notice;
delete from private.blocked_terms;
-- 1,000 synthetic terms of 4 to 10 letters, every tenth a two-word phrase.
insert into private.blocked_terms (term, reason)
select distinct case when i % 10 = 0 then w || ' ' || substr(md5(i::text || 'x'), 1, 5) else w end, 'bench'
  from (select i, translate(substr(md5(i::text), 1, 4 + i % 7), '0123456789', 'ghijklmnop') as w
          from generate_series(1, 1000) i) s;

create temporary table bench_texts (kind text, content text);
insert into bench_texts
select 'prose', 'A cinematic portrait of a lighthouse keeper at dusk, warm golden light, film grain, ' || md5(i::text)
       || ' highly detailed, 35mm lens, shallow depth of field, soft rim light, moody atmosphere, ' || i
  from generate_series(1, 1000) i
union all
select 'spaced letters', 'A poster: a b c d, the letters of ' || md5(i::text) || ' spaced out for a kids book, bright colors, ' || i
  from generate_series(1, 1000) i;

-- The baseline: what the blocklist did before (NFKC, a few invisible characters, whole words).
create function pg_temp.baseline(content text)
returns text
language sql stable
as $$
  select (regexp_match(lower(regexp_replace(normalize(content, nfkc), '[\u00ad\u200b-\u200f\u2060\ufeff]', '', 'g')),
            '(^|[^[:alpha:]])('
            || string_agg(regexp_replace(regexp_replace(b.term, '([!$()*+.:<=>?[\\\]^{|}-])', '\\\1', 'g'), '\s+', '\\s+', 'g'),
                          '|' order by length(b.term) desc, b.term)
            || ')($|[^[:alpha:]])'))[2]
    from private.blocked_terms b
$$;

do $$
declare
  text_kind text;
  started timestamptz;
  baseline_ms numeric;
  current_ms numeric;
  texts integer;
begin
  perform pg_temp.baseline('warm up'), private.find_blocked_term('warm up');
  for text_kind in select distinct b.kind from bench_texts b order by 1 loop
    select count(*) into texts from bench_texts b where b.kind = text_kind;
    started := clock_timestamp();
    perform count(pg_temp.baseline(b.content)) from bench_texts b where b.kind = text_kind;
    baseline_ms := extract(epoch from clock_timestamp() - started) * 1000 / texts;
    started := clock_timestamp();
    perform count(private.find_blocked_term(b.content)) from bench_texts b where b.kind = text_kind;
    current_ms := extract(epoch from clock_timestamp() - started) * 1000 / texts;
    raise notice '% texts (% of them): find_blocked_term % ms per text, baseline % ms per text',
      text_kind, texts, round(current_ms, 3), round(baseline_ms, 3);
  end loop;
end
$$;
rollback;
