-- 限支付疗程 (两库 batch 6 drugs, batch 8-3 service items): a drug or item paid beyond the course length
-- the catalogue allows (e.g. 支付不超过14天).
-- A course is the run of days on which a person uses the drug (all national codes of one generic drug
-- share a course: they come from the same Sheet1 row of the batch-6 file) or the item; a gap of more
-- than $new_course_after_days days without use starts a new course. The course day of a use is the
-- number of calendar days since the course began (day 1 = first day); uses on course days beyond
-- max_days are paid beyond the limit.
-- One hit per person and settlement with such uses; evidence and amount at risk = those lines.
WITH k AS (
    SELECT hilist_code, min(max_days) AS max_days, min(point_id) AS point_id,
           min(batch || ':' || coalesce(CAST(rule_row AS VARCHAR), hilist_code)) AS course_key
    FROM rule_pack WHERE rule_kind = 'course_length' AND max_days IS NOT NULL
    GROUP BY hilist_code
), used AS (
    SELECT l.*, k.max_days, k.point_id, k.course_key
    FROM claim_line l JOIN k ON k.hilist_code = l.hilist_code
    WHERE l.cnt > 0
), use_day AS (
    SELECT psn_no, course_key, fee_date,
           lag(fee_date) OVER (PARTITION BY psn_no, course_key ORDER BY fee_date) AS prev_date
    FROM (SELECT DISTINCT psn_no, course_key, fee_date FROM used)
), course AS (
    SELECT psn_no, course_key, fee_date,
           sum(CASE WHEN prev_date IS NULL OR date_diff('day', prev_date, fee_date) > $new_course_after_days
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
