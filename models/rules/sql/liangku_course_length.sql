-- 限支付疗程 (两库 batch 6 drugs, batch 8-3 service items): a drug or item paid beyond the course length
-- the catalogue allows (e.g. 支付不超过14天).
-- A course is the run of days on which a person uses the drug (all national codes of one generic drug
-- share a course: they come from the same Sheet1 row of the batch-6 file) or the item (its method
-- variants share a course: the same first 12 digits, e.g. 手功能评定 and 手功能评定(徒手), as for the
-- period limits of liangku_period_frequency); a gap of more
-- than $new_course_after_days days beyond the item's own minimum interval starts a new course. The minimum
-- interval is the point's 间隔时间不短于N天 (min_interval_days), else the period of a once-per-period
-- batch 8-4 point of the same code (每周最多支付一次: 7), else 0: an assessment allowed once in 14 days and
-- paid for at most 90 days is one course while the assessments are at most 14 + 7 days apart. The course
-- day of a use is the number of calendar days since the course began (day 1 = first day); uses on course
-- days beyond max_days are paid beyond the limit.
-- One hit per person and settlement with such uses; evidence and amount at risk = those lines.
WITH point AS (
    SELECT c.hilist_code, min(c.max_days) AS max_days, min(c.point_id) AS point_id,
           min(c.batch || ':' || coalesce(CAST(c.rule_row AS VARCHAR), left(c.hilist_code, 12))) AS course_key,
           coalesce(max(c.min_interval_days), max(p.period_days), 0) AS min_interval_days
    FROM rule_pack c
    LEFT JOIN rule_pack p ON p.rule_kind = 'period_frequency' AND p.hilist_code = c.hilist_code AND p.max_count = 1
    WHERE c.rule_kind = 'course_length' AND c.max_days IS NOT NULL
    GROUP BY c.hilist_code
), k AS (
    SELECT hilist_code, max_days, point_id, course_key,
           max(min_interval_days) OVER (PARTITION BY course_key) AS course_interval
    FROM point
), used AS (
    SELECT l.*, k.max_days, k.point_id, k.course_key, k.course_interval
    FROM claim_line l JOIN k ON k.hilist_code = l.hilist_code
    WHERE l.cnt > 0
), use_day AS (
    SELECT psn_no, course_key, fee_date,
           lag(fee_date) OVER (PARTITION BY psn_no, course_key ORDER BY fee_date) AS prev_date, course_interval
    FROM (SELECT DISTINCT psn_no, course_key, course_interval, fee_date FROM used)
), course AS (
    SELECT psn_no, course_key, fee_date,
           sum(CASE WHEN prev_date IS NULL
                         OR date_diff('day', prev_date, fee_date) > $new_course_after_days + course_interval
                    THEN 1 ELSE 0 END)
               OVER (PARTITION BY psn_no, course_key ORDER BY fee_date) AS course_no
    FROM use_day
), course_start AS (
    SELECT c.*, min(fee_date) OVER (PARTITION BY psn_no, course_key, course_no) AS started
    FROM course c
), beyond AS (
    SELECT u.*, s.started, date_diff('day', s.started, u.fee_date) + 1 AS course_day
    FROM used u JOIN course_start s USING (psn_no, course_key, fee_date)
    WHERE u.in_scope AND date_diff('day', s.started, u.fee_date) + 1 > u.max_days
)
SELECT 'psn' AS entity_type, psn_no AS entity_id, setl_id, any_value(mdtrt_id) AS mdtrt_id, psn_no,
       any_value(fixmedins_code) AS fixmedins_code, min(bilg_dr_code) AS prac_code,
       list(bkkp_sn ORDER BY bkkp_sn) AS evidence, sum(det_item_fee_sumamt) AS amount_at_risk,
       any_value(setl_time) AS event_time,
       {'hilist_code': min(hilist_code), 'hilist_name': min(hilist_name), 'max_days': min(max_days),
        'course_start': CAST(min(started) AS VARCHAR), 'last_course_day': max(course_day),
        'days_beyond': count(DISTINCT fee_date), 'point_id': min(point_id)} AS detail
FROM beyond
GROUP BY psn_no, setl_id, course_key
