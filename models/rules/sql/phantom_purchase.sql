-- 虚假购药 / 空刷: a pharmacy where cards are swiped in bursts with nothing behind them — one after the other,
-- by different card holders, for the same basket at the same round total.
-- A burst: purchases ($purchase_med_types) at one pharmacy with the same basket (the same items in the same
-- quantities) and the same total, a multiple of $round_yuan, each within $max_gap_minutes of the previous
-- one of that basket, by at least $min_cards different cards. A queue of real customers has different
-- baskets and totals; a family at the counter is a few cards, not $min_cards.
-- A pharmacy is hit when it has at least $min_bursts bursts on different days, with $min_burst_swipes swipes
-- in all, and its share of purchases in bursts is at least $peer_multiple times the median share of the
-- pharmacies (the peers' baseline: where bursts were an honest habit of a region, the bar rises with it).
-- The detail compares the bursts' off-hours share (before $office_start_hour or from $office_end_hour on,
-- or at weekends) with the pharmacy's other purchases.
-- Evidence: the lines of the burst purchases (the $max_evidence_lines largest; the detail counts them all
-- and lists the first bursts with their settlements); amount at risk: their amount.
WITH purchase AS (   -- the time of a purchase: its first line rung up at the counter (the settlement may post later)
    SELECT s.setl_id, s.psn_no, s.fixmedins_code, min(l.fee_ocur_time) AS setl_time, s.in_scope,
           string_agg(l.hilist_code || '×' || CAST(l.cnt AS VARCHAR), ',' ORDER BY l.hilist_code, l.cnt) AS basket,
           sum(l.det_item_fee_sumamt) AS total, count(*) AS n_lines
    FROM claim_setl s
    JOIN claim_line l ON l.setl_id = s.setl_id
    WHERE list_contains($purchase_med_types, s.med_type)
    GROUP BY s.setl_id, s.psn_no, s.fixmedins_code, s.in_scope
), chained AS (
    SELECT *,
           date_diff('second', lag(setl_time) OVER w, setl_time) AS gap_seconds
    FROM purchase
    WHERE total > 0 AND CAST(round(total * 100) AS BIGINT) % CAST(round($round_yuan * 100) AS BIGINT) = 0
    WINDOW w AS (PARTITION BY fixmedins_code, basket, total ORDER BY setl_time, setl_id)
), numbered AS (
    SELECT *, sum(CASE WHEN gap_seconds IS NULL OR gap_seconds > 60 * $max_gap_minutes THEN 1 ELSE 0 END)
                  OVER (PARTITION BY fixmedins_code, basket, total ORDER BY setl_time, setl_id) AS chain_no
    FROM chained
), burst AS (
    SELECT fixmedins_code, basket, total, chain_no, count(*) AS swipes, count(DISTINCT psn_no) AS cards,
           min(setl_time) AS first_time, max(setl_time) AS last_time, bool_or(in_scope) AS in_scope,
           list(setl_id ORDER BY setl_time, setl_id) AS setl_ids
    FROM numbered
    GROUP BY ALL
    HAVING count(DISTINCT psn_no) >= $min_cards
), burst_setl AS (
    SELECT b.fixmedins_code, unnest(b.setl_ids) AS setl_id FROM burst b WHERE b.in_scope
), volume AS (        -- every pharmacy's purchases and off-hours share, burst or not
    SELECT p.fixmedins_code, count(*) AS purchases,
           count(*) FILTER (WHERE b.setl_id IS NOT NULL) AS burst_swipes,
           avg(CASE WHEN hour(p.setl_time) < $office_start_hour OR hour(p.setl_time) >= $office_end_hour
                         OR isodow(p.setl_time) >= 6 THEN 1.0 ELSE 0.0 END)
               FILTER (WHERE b.setl_id IS NULL) AS other_off_hours_share,
           avg(CASE WHEN hour(p.setl_time) < $office_start_hour OR hour(p.setl_time) >= $office_end_hour
                         OR isodow(p.setl_time) >= 6 THEN 1.0 ELSE 0.0 END)
               FILTER (WHERE b.setl_id IS NOT NULL) AS burst_off_hours_share
    FROM purchase p LEFT JOIN burst_setl b ON b.setl_id = p.setl_id
    WHERE p.in_scope
    GROUP BY p.fixmedins_code
), peers AS (
    SELECT median(burst_swipes / purchases) AS median_share FROM volume
), per_pharmacy AS (
    SELECT b.fixmedins_code, count(*) AS bursts, count(DISTINCT CAST(b.first_time AS DATE)) AS burst_days,
           sum(b.swipes) AS swipes, max(b.cards) AS max_cards,
           list({'date': CAST(CAST(b.first_time AS DATE) AS VARCHAR),
                 'from': strftime(b.first_time, '%H:%M'), 'to': strftime(b.last_time, '%H:%M'),
                 'cards': b.cards, 'total': b.total, 'setl_ids': b.setl_ids[1:20]}
                ORDER BY b.first_time) AS burst_list
    FROM burst b WHERE b.in_scope
    GROUP BY b.fixmedins_code
), flagged AS (
    SELECT p.*, v.purchases, v.burst_off_hours_share, v.other_off_hours_share, pe.median_share,
           p.swipes / v.purchases AS burst_share
    FROM per_pharmacy p JOIN volume v USING (fixmedins_code) CROSS JOIN peers pe
    WHERE p.burst_days >= $min_bursts AND p.swipes >= $min_burst_swipes
      AND p.swipes / v.purchases >= $peer_multiple * pe.median_share
), lines AS (
    SELECT b.fixmedins_code, l.bkkp_sn, l.det_item_fee_sumamt, l.setl_time,
           row_number() OVER (PARTITION BY b.fixmedins_code ORDER BY l.det_item_fee_sumamt DESC, l.bkkp_sn) AS k
    FROM burst_setl b
    JOIN claim_line l ON l.setl_id = b.setl_id
    WHERE b.fixmedins_code IN (SELECT fixmedins_code FROM flagged)
), evidence AS (
    SELECT fixmedins_code, list(bkkp_sn ORDER BY bkkp_sn) FILTER (WHERE k <= $max_evidence_lines) AS evidence,
           count(*) AS n_lines, sum(det_item_fee_sumamt) AS amount, min(setl_time) AS first_time
    FROM lines GROUP BY fixmedins_code
)
SELECT 'fixmedins' AS entity_type, f.fixmedins_code AS entity_id, NULL AS setl_id, NULL AS mdtrt_id,
       NULL AS psn_no, f.fixmedins_code, NULL AS prac_code, e.evidence, e.amount AS amount_at_risk,
       e.first_time AS event_time,
       {'bursts': f.bursts, 'burst_days': f.burst_days, 'swipes': f.swipes, 'max_cards': f.max_cards,
        'purchases': f.purchases,
        'burst_pct': CAST(round(100 * f.burst_share, 1) AS VARCHAR) || '%',
        'peer_median_pct': CAST(round(100 * f.median_share, 2) AS VARCHAR) || '%',
        'burst_off_hours_pct': CAST(round(100 * f.burst_off_hours_share, 1) AS VARCHAR) || '%',
        'other_off_hours_pct': CAST(round(100 * coalesce(f.other_off_hours_share, 0), 1) AS VARCHAR) || '%',
        'first_burst_zh': printf('%s %s—%s %d张卡 每笔%s元', f.burst_list[1].date, f.burst_list[1].from,
                                 f.burst_list[1].to, f.burst_list[1].cards, CAST(f.burst_list[1].total AS VARCHAR)),
        'burst_list': f.burst_list[1:10], 'n_lines': e.n_lines} AS detail
FROM flagged f JOIN evidence e USING (fixmedins_code)
