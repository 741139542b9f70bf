-- 冒用死亡人口信息: a settlement for care that began after the person's death (psn_info.die_date, from the
-- death-registration data exchange) by more than $grace_days days. The visit's begin time (mdtrt_d.begntime)
-- is used, else the settlement's begin date, else its settlement time: a stay that ends with the death
-- and is settled afterwards is not a hit.
-- One hit per settlement; evidence and amount at risk = all its lines.
WITH after_death AS (
    SELECT s.setl_id, s.mdtrt_id, s.psn_no, s.fixmedins_code, s.setl_time, s.medfee_sumamt, p.die_date,
           coalesce(CAST(m.begntime AS DATE), s.begndate, CAST(s.setl_time AS DATE)) AS care_date, m.chfpdr_code
    FROM claim_setl s
    JOIN person p ON p.psn_no = s.psn_no
    LEFT JOIN mdtrt_d m ON m.mdtrt_id = s.mdtrt_id
    WHERE s.in_scope AND p.die_date IS NOT NULL
      AND coalesce(CAST(m.begntime AS DATE), s.begndate, CAST(s.setl_time AS DATE)) > p.die_date + $grace_days
)
SELECT 'setl' AS entity_type, d.setl_id AS entity_id, d.setl_id, d.mdtrt_id, d.psn_no, d.fixmedins_code,
       d.chfpdr_code AS prac_code, list(l.bkkp_sn ORDER BY l.bkkp_sn) FILTER (WHERE l.bkkp_sn IS NOT NULL) AS evidence,
       coalesce(sum(l.det_item_fee_sumamt), any_value(d.medfee_sumamt)) AS amount_at_risk,
       d.setl_time AS event_time,
       {'die_date': CAST(d.die_date AS VARCHAR), 'care_date': CAST(d.care_date AS VARCHAR),
        'days_after_death': date_diff('day', d.die_date, d.care_date)} AS detail
FROM after_death d
LEFT JOIN claim_line l ON l.setl_id = d.setl_id
GROUP BY ALL
