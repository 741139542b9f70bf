-- 挂床住院: an inpatient stay during which the patient is active elsewhere (a settlement of the same person
-- at another institution on a day strictly between admission and discharge), while the stay itself shows
-- little care: fewer than $max_care_lines_per_day care lines (drugs 101, exams 03, labs 04, treatments 05,
-- operations 06) per day of stay. A stay with normal care and the card used elsewhere is card theft
-- (card_theft.sql), not bed hold.
-- One hit per stay; evidence and amount at risk = the stay's lines; detail.elsewhere = the outside settlements.
WITH stay AS (
    SELECT * FROM claim_mdtrt
    WHERE care_class = 'inpatient' AND in_scope AND date_diff('day', begin_date, end_date) >= 2
), activity AS (
    SELECT s.setl_id, s.psn_no, s.fixmedins_code, coalesce(CAST(m.begntime AS DATE), CAST(s.setl_time AS DATE)) AS active_date,
           s.mdtrt_id
    FROM claim_setl s LEFT JOIN mdtrt_d m ON m.mdtrt_id = s.mdtrt_id
), elsewhere AS (
    SELECT st.mdtrt_id, list(a.setl_id ORDER BY a.active_date, a.setl_id) AS outside_setl,
           list(DISTINCT a.fixmedins_code ORDER BY a.fixmedins_code) AS outside_fixmedins, count(DISTINCT a.active_date) AS active_days
    FROM stay st
    JOIN activity a ON a.psn_no = st.psn_no AND a.mdtrt_id <> st.mdtrt_id AND a.fixmedins_code <> st.fixmedins_code
                   AND a.active_date > st.begin_date AND a.active_date < st.end_date
    GROUP BY st.mdtrt_id
), care AS (
    SELECT l.mdtrt_id, list(l.bkkp_sn ORDER BY l.bkkp_sn) AS lines, sum(l.det_item_fee_sumamt) AS amount,
           count(*) FILTER (WHERE l.list_type = '101' OR l.med_chrgitm_type IN ('03', '04', '05', '06')) AS care_lines
    FROM claim_line l
    WHERE l.mdtrt_id IN (SELECT mdtrt_id FROM elsewhere)
    GROUP BY l.mdtrt_id
)
SELECT 'mdtrt' AS entity_type, st.mdtrt_id AS entity_id, st.setl_id, st.mdtrt_id, st.psn_no, st.fixmedins_code,
       st.chfpdr_code AS prac_code, coalesce(c.lines, []) AS evidence,
       coalesce(c.amount, st.medfee_sumamt) AS amount_at_risk, st.setl_time AS event_time,
       {'admitted': CAST(st.begin_date AS VARCHAR), 'discharged': CAST(st.end_date AS VARCHAR),
        'stay_days': date_diff('day', st.begin_date, st.end_date),
        'care_lines_per_day': round(coalesce(c.care_lines, 0) / date_diff('day', st.begin_date, st.end_date), 2),
        'active_days': e.active_days, 'elsewhere': e.outside_setl, 'elsewhere_fixmedins': e.outside_fixmedins} AS detail
FROM stay st
JOIN elsewhere e ON e.mdtrt_id = st.mdtrt_id
LEFT JOIN care c ON c.mdtrt_id = st.mdtrt_id
WHERE coalesce(c.care_lines, 0) / date_diff('day', st.begin_date, st.end_date) < $max_care_lines_per_day
