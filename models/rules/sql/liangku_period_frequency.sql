-- 周期超频次 (两库 batch 8-4): a service item billed more than max_count times within period_days days for
-- one person (e.g. 糖化血红蛋白测定 once in 15 days, 康复评定 at least 14 days apart).
-- The method variants of an item (the last three digits of the 15-digit national code, e.g.
-- 糖化血红蛋白测定(色谱法)) count together with it: they share the first 12 digits.
-- A use is over the limit when, with the uses of the previous period_days - 1 days, the count passes
-- max_count. One hit per line over the limit; evidence and amount at risk = that line.
WITH k AS (
    SELECT hilist_code, left(hilist_code, 12) AS family, min(max_count) AS max_count,
           min(period_days) AS period_days, min(point_id) AS point_id
    FROM rule_pack WHERE rule_kind = 'period_frequency'
    GROUP BY hilist_code
), used AS (
    SELECT l.*, k.family, k.max_count, k.period_days, k.point_id
    FROM claim_line l JOIN k ON k.hilist_code = l.hilist_code
    WHERE l.cnt > 0
), prior AS (
    SELECT a.bkkp_sn, sum(b.cnt) AS prior_cnt, list(b.bkkp_sn ORDER BY b.fee_ocur_time) AS prior_lines,
           CAST(max(b.fee_date) AS VARCHAR) AS last_prior_date
    FROM used a
    JOIN used b ON b.psn_no = a.psn_no AND b.family = a.family
               AND b.fee_date > a.fee_date - a.period_days
               AND (b.fee_ocur_time < a.fee_ocur_time
                    OR (b.fee_ocur_time = a.fee_ocur_time AND b.bkkp_sn < a.bkkp_sn))
    WHERE a.in_scope
    GROUP BY a.bkkp_sn
)
SELECT 'line' AS entity_type, u.bkkp_sn AS entity_id, u.setl_id, u.mdtrt_id, u.psn_no, u.fixmedins_code,
       u.bilg_dr_code AS prac_code, [u.bkkp_sn] AS evidence, u.det_item_fee_sumamt AS amount_at_risk,
       u.setl_time AS event_time,
       {'hilist_code': u.hilist_code, 'hilist_name': u.hilist_name, 'period_days': u.period_days,
        'max_count': u.max_count, 'count_in_period': regexp_replace(CAST(p.prior_cnt + u.cnt AS VARCHAR), '\.0$', ''), 'last_prior_date': p.last_prior_date,
        'prior_lines': p.prior_lines, 'point_id': u.point_id} AS detail
FROM used u JOIN prior p ON p.bkkp_sn = u.bkkp_sn
WHERE p.prior_cnt + u.cnt > u.max_count
