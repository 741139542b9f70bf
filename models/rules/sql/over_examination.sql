-- 过度检查: a doctor or an institution whose visits carry far more exams and labs (med_chrgitm_type in
-- $exam_chrgitm_types: 检查费, 化验费) than the same visits get elsewhere.
-- Case mix (indirect standardisation, as a standardised ratio): every visit at an institution of a type in
-- $institution_types is compared with the visits of the *other* institutions in its peer cell — same care
-- class, institution level, admission department, main diagnosis category (ICD-10, 3 characters),
-- number of other diagnoses (0, 1, 2, 3+: sicker patients) and, for stays, length band (≤3, 4-7, 8-14,
-- 15+ days). Expected exams = the cell's mean elsewhere (a cell without other institutions gives no
-- expectation: the visit is left out); observed/expected is the ratio, (O − E)/√E its Poisson z.
-- A doctor (主诊医师, chfpdr_code) is hit with at least $min_visits_doctor comparable visits, a ratio of at
-- least $min_ratio_doctor, z ≥ $min_z and $min_excess_exams exams above expectation; an institution with
-- $min_visits_institution visits, a ratio of $min_ratio_institution, the same z and excess.
-- Evidence: the exam lines of its comparable visits (the $max_evidence_lines largest); amount at risk: the
-- excess share (O − E)/O of their amount.
WITH visit AS (
    SELECT m.mdtrt_id, m.fixmedins_code, m.chfpdr_code AS prac_code, m.care_class, m.in_scope, m.setl_time,
           i.hosp_level, coalesce(d.adm_dept_codg, '-') AS dept, coalesce(substr(m.main_diag, 1, 3), '-') AS diag_cat,
           CASE WHEN m.care_class = 'inpatient'
                THEN CASE WHEN m.end_date - m.begin_date <= 3 THEN 0 WHEN m.end_date - m.begin_date <= 7 THEN 1
                          WHEN m.end_date - m.begin_date <= 14 THEN 2 ELSE 3 END
                ELSE -1 END AS los_band
    FROM claim_mdtrt m
    JOIN institution i ON i.fixmedins_code = m.fixmedins_code
    LEFT JOIN mdtrt_d d ON d.mdtrt_id = m.mdtrt_id
    WHERE list_contains($institution_types, m.fixmedins_type)
), comorbid AS (
    SELECT mdtrt_id, least(count(DISTINCT substr(diag_code, 1, 3)), 3) AS other_diags
    FROM claim_diag WHERE maindiag_flag <> '1' AND mdtrt_id IN (SELECT mdtrt_id FROM visit)
    GROUP BY mdtrt_id
), exams AS (
    SELECT mdtrt_id, sum(cnt) AS exams, sum(det_item_fee_sumamt) AS exam_amt
    FROM claim_line
    WHERE list_contains($exam_chrgitm_types, med_chrgitm_type) AND mdtrt_id IN (SELECT mdtrt_id FROM visit)
    GROUP BY mdtrt_id
), cell AS (
    SELECT v.*, coalesce(c.other_diags, 0) AS other_diags, coalesce(e.exams, 0) AS exams,
           coalesce(e.exam_amt, 0) AS exam_amt
    FROM visit v LEFT JOIN comorbid c USING (mdtrt_id) LEFT JOIN exams e USING (mdtrt_id)
), expected AS (     -- the cell's mean exams at the other institutions
    SELECT *,
           (sum(exams) OVER k - sum(exams) OVER ki) / nullif(count(*) OVER k - count(*) OVER ki, 0) AS expected
    FROM cell
    WINDOW k AS (PARTITION BY care_class, hosp_level, dept, diag_cat, other_diags, los_band),
           ki AS (PARTITION BY care_class, hosp_level, dept, diag_cat, other_diags, los_band, fixmedins_code)
), comparable AS (
    SELECT * FROM expected WHERE expected IS NOT NULL AND in_scope
), ratio AS (
    SELECT 'prac' AS entity_type, prac_code AS entity_id, any_value(fixmedins_code) AS fixmedins_code,
           count(*) AS visits, sum(exams) AS observed, sum(expected) AS expected, sum(exam_amt) AS exam_amt,
           min(setl_time) AS first_time
    FROM comparable WHERE prac_code IS NOT NULL
    GROUP BY prac_code
    UNION ALL
    SELECT 'fixmedins', fixmedins_code, fixmedins_code, count(*), sum(exams), sum(expected), sum(exam_amt),
           min(setl_time)
    FROM comparable
    GROUP BY fixmedins_code
), flagged AS (
    SELECT *, observed / expected AS oe, (observed - expected) / sqrt(expected) AS z
    FROM ratio
    WHERE expected > 0 AND observed - expected >= $min_excess_exams
      AND (observed - expected) / sqrt(expected) >= $min_z
      AND CASE entity_type WHEN 'prac' THEN visits >= $min_visits_doctor AND observed / expected >= $min_ratio_doctor
                           ELSE visits >= $min_visits_institution AND observed / expected >= $min_ratio_institution END
), lines AS (
    SELECT f.entity_type, f.entity_id, l.bkkp_sn, l.det_item_fee_sumamt,
           row_number() OVER (PARTITION BY f.entity_type, f.entity_id
                              ORDER BY l.det_item_fee_sumamt DESC, l.bkkp_sn) AS k
    FROM flagged f
    JOIN comparable c ON CASE f.entity_type WHEN 'prac' THEN c.prac_code ELSE c.fixmedins_code END = f.entity_id
    JOIN claim_line l ON l.mdtrt_id = c.mdtrt_id AND list_contains($exam_chrgitm_types, l.med_chrgitm_type)
), evidence AS (
    SELECT entity_type, entity_id, list(bkkp_sn ORDER BY bkkp_sn) FILTER (WHERE k <= $max_evidence_lines) AS evidence,
           count(*) AS n_lines
    FROM lines GROUP BY ALL
)
SELECT f.entity_type, f.entity_id, NULL AS setl_id, NULL AS mdtrt_id, NULL AS psn_no, f.fixmedins_code,
       CASE WHEN f.entity_type = 'prac' THEN f.entity_id END AS prac_code, e.evidence,
       round(f.exam_amt * (f.observed - f.expected) / f.observed, 2) AS amount_at_risk, f.first_time AS event_time,
       {'who_zh': CASE f.entity_type WHEN 'prac' THEN '该医师' ELSE '本机构' END,
        'visits': f.visits, 'observed': round(f.observed, 1), 'expected': round(f.expected, 1),
        'per_visit': round(f.observed / f.visits, 2), 'expected_per_visit': round(f.expected / f.visits, 2),
        'ratio': round(f.oe, 2), 'z': round(f.z, 1),
        'threshold_ratio': CASE f.entity_type WHEN 'prac' THEN $min_ratio_doctor ELSE $min_ratio_institution END,
        'exam_amount': CAST(round(f.exam_amt, 2) AS DECIMAL(18, 2)), 'n_lines': e.n_lines} AS detail
FROM flagged f JOIN evidence e USING (entity_type, entity_id)
