-- 限频次 (两库 batch 8-1): a service item billed more often than allowed per day (e.g. 普通病房床位费 and
-- 住院诊查费 once a day; monitoring items at most 24 hours a day).
-- Counted per visit and item: an inpatient stay may bill max_count per day of stay (住院天数 = discharge
-- date - admission date: the admission day counts, the discharge day does not; at least one day); any
-- other visit max_count per calendar day on which the item was billed. The quantities (cnt) are added
-- up in billing order, the lines at the item's regular posting time in the visit first (daily charges
-- are posted at the same time of day throughout a stay; the commonest time of day of the item's lines
-- is its regular time), then the others by time; the lines that take the total above the allowance are
-- over the limit. Counting per stay, not per calendar day, keeps a charge posted just after midnight
-- from looking like a second charge that day.
-- One hit per line over the limit; evidence and amount at risk = that line.
WITH k AS (
    SELECT hilist_code, min(max_count) AS max_count, min(count_unit) AS count_unit, min(point_id) AS point_id
    FROM rule_pack WHERE rule_kind = 'frequency'
    GROUP BY hilist_code
), used AS (
    SELECT l.*, k.max_count, k.count_unit, k.point_id, CAST(l.fee_ocur_time AS TIME) AS time_of_day
    FROM claim_line l JOIN k ON k.hilist_code = l.hilist_code
    WHERE l.cnt > 0
), per_item AS (  -- days the visit may bill the item, and its regular posting time
    SELECT u.mdtrt_id, u.hilist_code,
           CASE WHEN any_value(m.care_class) = 'inpatient'
                THEN greatest(date_diff('day', any_value(m.begin_date), any_value(m.end_date)), 1)
                ELSE count(DISTINCT u.fee_date) END AS days,
           first(t.time_of_day ORDER BY t.n DESC, t.time_of_day) AS regular_time
    FROM used u
    LEFT JOIN claim_mdtrt m ON m.mdtrt_id = u.mdtrt_id
    JOIN (SELECT mdtrt_id, hilist_code, time_of_day, count(*) AS n FROM used GROUP BY ALL) t
      ON t.mdtrt_id = u.mdtrt_id AND t.hilist_code = u.hilist_code
    GROUP BY u.mdtrt_id, u.hilist_code
), counted AS (
    SELECT u.*, p.days, p.days * u.max_count AS allowed,
           sum(u.cnt) OVER (w ROWS UNBOUNDED PRECEDING) AS running_cnt,
           sum(u.cnt) OVER (PARTITION BY u.mdtrt_id, u.hilist_code) AS total_cnt
    FROM used u JOIN per_item p ON p.mdtrt_id = u.mdtrt_id AND p.hilist_code = u.hilist_code
    WINDOW w AS (PARTITION BY u.mdtrt_id, u.hilist_code
                 ORDER BY (u.time_of_day = p.regular_time) DESC, u.fee_ocur_time, u.bkkp_sn)
)
SELECT 'line' AS entity_type, bkkp_sn AS entity_id, setl_id, mdtrt_id, psn_no, fixmedins_code,
       bilg_dr_code AS prac_code, [bkkp_sn] AS evidence, det_item_fee_sumamt AS amount_at_risk,
       setl_time AS event_time,
       {'hilist_code': hilist_code, 'hilist_name': hilist_name, 'fee_date': CAST(fee_date AS VARCHAR),
        'max_count': max_count, 'unit_zh': CASE count_unit WHEN 'hour' THEN '小时' ELSE '次' END,
        'days': days, 'allowed': allowed,
        'total': regexp_replace(CAST(total_cnt AS VARCHAR), '\.0$', ''), 'point_id': point_id} AS detail
FROM counted
WHERE in_scope AND running_cnt > allowed
