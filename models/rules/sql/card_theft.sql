-- 盗刷: a purchase with the card ($purchase_med_types, 药店购药) on a day the card holder lies in hospital
-- elsewhere (strictly between admission and discharge of a stay at another institution) and that stay
-- shows normal care (at least $min_care_lines_per_day care lines per day: the holder was in bed). A stay
-- with little care and the patient out is bed hold (bed_hold.sql).
-- One hit per purchase settlement; evidence and amount at risk = its lines.
WITH purchase AS (
    SELECT s.setl_id, s.mdtrt_id, s.psn_no, s.fixmedins_code, s.setl_time, s.medfee_sumamt,
           coalesce(CAST(m.begntime AS DATE), CAST(s.setl_time AS DATE)) AS active_date
    FROM claim_setl s LEFT JOIN mdtrt_d m ON m.mdtrt_id = s.mdtrt_id
    WHERE s.in_scope AND list_contains($purchase_med_types, s.med_type)
), stay AS (
    SELECT * FROM claim_mdtrt WHERE care_class = 'inpatient' AND date_diff('day', begin_date, end_date) >= 2
), during AS (
    SELECT p.*, st.mdtrt_id AS stay_mdtrt_id, st.fixmedins_code AS stay_fixmedins_code,
           st.begin_date, st.end_date,
           row_number() OVER (PARTITION BY p.setl_id ORDER BY st.begin_date, st.mdtrt_id) AS k
    FROM purchase p
    JOIN stay st ON st.psn_no = p.psn_no AND st.fixmedins_code <> p.fixmedins_code
                AND p.active_date > st.begin_date AND p.active_date < st.end_date
), care AS (
    SELECT l.mdtrt_id,
           count(*) FILTER (WHERE l.list_type = '101' OR l.med_chrgitm_type IN ('03', '04', '05', '06')) AS care_lines
    FROM claim_line l
    WHERE l.mdtrt_id IN (SELECT stay_mdtrt_id FROM during)
    GROUP BY l.mdtrt_id
), theft AS (
    SELECT d.*, round(coalesce(c.care_lines, 0) / date_diff('day', d.begin_date, d.end_date), 2) AS care_per_day
    FROM during d LEFT JOIN care c ON c.mdtrt_id = d.stay_mdtrt_id
    WHERE d.k = 1
      AND coalesce(c.care_lines, 0) / date_diff('day', d.begin_date, d.end_date) >= $min_care_lines_per_day
)
SELECT 'setl' AS entity_type, t.setl_id AS entity_id, t.setl_id, t.mdtrt_id, t.psn_no, t.fixmedins_code,
       NULL AS prac_code, list(l.bkkp_sn ORDER BY l.bkkp_sn) FILTER (WHERE l.bkkp_sn IS NOT NULL) AS evidence,
       coalesce(sum(l.det_item_fee_sumamt), any_value(t.medfee_sumamt)) AS amount_at_risk,
       t.setl_time AS event_time,
       {'purchase_date': CAST(t.active_date AS VARCHAR), 'stay_mdtrt_id': t.stay_mdtrt_id,
        'stay_fixmedins_code': t.stay_fixmedins_code, 'admitted': CAST(t.begin_date AS VARCHAR),
        'discharged': CAST(t.end_date AS VARCHAR), 'care_lines_per_day': t.care_per_day} AS detail
FROM theft t
LEFT JOIN claim_line l ON l.setl_id = t.setl_id
GROUP BY ALL
