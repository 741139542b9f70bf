-- 分解住院: a readmission to the same institution within $max_gap_days days of the previous discharge, for
-- a related diagnosis ($related_diagnosis: 'code' = the same main diagnosis code, 'category' = the same
-- three-character ICD-10 category, 'any' = any). One stay billed as two, to reset the per-stay limits.
-- Inpatient stays are the visits whose med_type is an inpatient code of rules.yaml; with
-- $same_institution false a readmission anywhere counts.
-- Planned care is not a split: a readmission whose main diagnosis starts with one of
-- $planned_care_prefixes (a radiotherapy or chemotherapy course Z51.0/Z51.1/Z51.2: the admission's purpose
-- coded as its main diagnosis, the cancer as a secondary one) is the next cycle of a treatment plan, not
-- the rest of the previous stay.
-- One hit per readmission (the second stay); evidence and amount at risk = its lines.
WITH stay AS (
    SELECT * FROM claim_mdtrt WHERE care_class = 'inpatient'
), ordered AS (
    SELECT s.*,
           lag(mdtrt_id) OVER w AS prev_mdtrt_id, lag(endtime) OVER w AS prev_endtime,
           lag(end_date) OVER w AS prev_end_date, lag(main_diag) OVER w AS prev_diag,
           lag(fixmedins_code) OVER w AS prev_fixmedins_code
    FROM stay s
    WINDOW w AS (PARTITION BY psn_no, CASE WHEN $same_institution THEN fixmedins_code END
                 ORDER BY begntime, mdtrt_id)
), readmission AS (
    SELECT * FROM ordered
    WHERE in_scope AND prev_mdtrt_id IS NOT NULL
      AND begntime >= prev_endtime
      AND date_diff('day', prev_end_date, begin_date) <= $max_gap_days
      AND CASE $related_diagnosis
              WHEN 'code' THEN main_diag = prev_diag
              WHEN 'category' THEN left(main_diag, 3) = left(prev_diag, 3)
              ELSE true END
      AND NOT coalesce(list_bool_or(list_transform($planned_care_prefixes, lambda prefix: starts_with(main_diag, prefix))),
                       false)
)
SELECT 'mdtrt' AS entity_type, r.mdtrt_id AS entity_id, r.setl_id, r.mdtrt_id, r.psn_no, r.fixmedins_code,
       r.chfpdr_code AS prac_code, list(l.bkkp_sn ORDER BY l.bkkp_sn) FILTER (WHERE l.bkkp_sn IS NOT NULL) AS evidence,
       coalesce(sum(l.det_item_fee_sumamt), any_value(r.medfee_sumamt)) AS amount_at_risk,
       r.setl_time AS event_time,
       {'prev_mdtrt_id': r.prev_mdtrt_id, 'prev_discharge': CAST(r.prev_end_date AS VARCHAR),
        'readmitted': CAST(r.begin_date AS VARCHAR), 'gap_days': date_diff('day', r.prev_end_date, r.begin_date),
        'main_diag': r.main_diag, 'prev_diag': r.prev_diag} AS detail
FROM readmission r
LEFT JOIN claim_line l ON l.mdtrt_id = r.mdtrt_id
GROUP BY ALL
