-- 过度检查: a department or an institution whose visits carry far more exams and labs (med_chrgitm_type in
-- $exam_chrgitm_types: 检查费, 化验费) than the same visits get elsewhere, and the doctors who carry it.
-- Case mix (indirect standardisation, as a standardised ratio): every visit at an institution of a type in
-- $institution_types is compared with its peer cell — same care class, institution level, admission
-- department, main diagnosis category (ICD-10, 3 characters), number of other diagnosis categories (0, 1,
-- 2, 3+: sicker patients) and, for stays, length band (≤3, 4-7, 8-14, 15+ days). Expected exams = the
-- cell's norm: the median of its institutions' mean exams per visit, so that neither the institution
-- judged nor a few heavy examiners set it; a cell with fewer than $min_peer_institutions institutions has
-- no norm and its visits are left out. Observed/expected is the ratio.
-- The unit judged is the one a scheme is run by (科室开单指标, 检查套餐): a clinical department of an
-- institution (its admission department), and the institution as a whole. A unit is hit with at least
-- $min_visits_department (an institution: $min_visits_institution) comparable visits, a ratio of at least
-- $min_ratio — above it beyond chance: z = (O − bar·E)/√(bar·E) ≥ $min_z — $min_excess_exams exams above
-- expectation, and a ratio that does not rest on one doctor: without its heaviest doctor (by excess) the
-- rest of the unit still examines at $min_ratio_rest or more (a unit of one doctor is that doctor). One
-- doctor far above colleagues who examine as usual is a practice outlier for medical-record review, not a
-- scheme, and honest habits spread that far (docs/rules.md, "Known limits").
-- The doctors (主诊医师) of a hit department whose own ratio in it is $min_ratio_rest or more are hit with
-- it; the institution is hit through its hit departments or on its own figures: it bills for them
-- (定点医疗机构主体责任). A doctor's hit names the institution in its detail, not in fixmedins_code: the
-- institution's hit already carries the excess, and a sum of hits per institution must not count it twice.
-- Evidence: the exam lines of the comparable visits behind the hit (the doctor's in his hit departments;
-- the institution's, or its hit departments' when it is hit through them), the $max_evidence_lines
-- largest; amount at risk: the excess share (O − E)/O of their exams' amount.
WITH visit AS (
    SELECT m.mdtrt_id, m.fixmedins_code, m.chfpdr_code AS prac_code, m.care_class, m.in_scope, m.setl_time,
           i.hosp_level, coalesce(d.adm_dept_codg, '-') AS dept, coalesce(substr(m.main_diag, 1, 3), '-') AS diag_cat,
           CASE WHEN m.care_class = 'inpatient'
                THEN CASE WHEN date_diff('day', m.begin_date, m.end_date) <= 3 THEN 0
                          WHEN date_diff('day', m.begin_date, m.end_date) <= 7 THEN 1
                          WHEN date_diff('day', m.begin_date, m.end_date) <= 14 THEN 2 ELSE 3 END
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
), cell_norm AS (    -- the cell's norm: the median of its institutions' mean exams per visit
    SELECT care_class, hosp_level, dept, diag_cat, other_diags, los_band, median(inst_mean) AS norm
    FROM (SELECT care_class, hosp_level, dept, diag_cat, other_diags, los_band, fixmedins_code,
                 avg(exams) AS inst_mean
          FROM cell GROUP BY ALL)
    GROUP BY ALL
    HAVING count(*) >= $min_peer_institutions
), expected AS (
    SELECT c.*, n.norm AS expected
    FROM cell c
    LEFT JOIN cell_norm n USING (care_class, hosp_level, dept, diag_cat, other_diags, los_band)
), comparable AS (
    SELECT * FROM expected WHERE expected IS NOT NULL AND in_scope
), per_doctor AS (  -- each doctor's figures in each department, the unit of a scheme
    SELECT fixmedins_code, dept, prac_code, count(*) AS visits, sum(exams) AS observed, sum(expected) AS expected,
           sum(exam_amt) AS exam_amt, min(setl_time) AS first_time
    FROM comparable WHERE prac_code IS NOT NULL
    GROUP BY ALL
), unit_doctor AS (  -- a doctor's share of a unit: a department, or the whole institution ('*')
    SELECT fixmedins_code, dept, prac_code, visits, observed, expected FROM per_doctor
    UNION ALL
    SELECT fixmedins_code, '*', prac_code, sum(visits), sum(observed), sum(expected) FROM per_doctor GROUP BY ALL
), unit AS (
    SELECT fixmedins_code, dept, count(*) AS visits, sum(exams) AS observed, sum(expected) AS expected,
           sum(exam_amt) AS exam_amt, min(setl_time) AS first_time
    FROM comparable GROUP BY fixmedins_code, dept
    UNION ALL
    SELECT fixmedins_code, '*', count(*), sum(exams), sum(expected), sum(exam_amt), min(setl_time)
    FROM comparable GROUP BY fixmedins_code
), heaviest AS (     -- the unit without its heaviest doctor: does the excess rest on him alone?
    SELECT fixmedins_code, dept, count(*) AS n_doctors,
           arg_max(observed, observed - expected) AS top_observed, arg_max(expected, observed - expected) AS top_expected
    FROM unit_doctor GROUP BY ALL
), scored AS (       -- z: how far the observed exams lie above the bar (the ratio times the expectation)
    SELECT u.*, coalesce(h.n_doctors, 0) AS n_doctors, u.observed / u.expected AS oe,
           (u.observed - $min_ratio * u.expected) / sqrt($min_ratio * u.expected) AS z,
           u.exam_amt * (u.observed - u.expected) / nullif(u.observed, 0) AS excess_amt,
           CASE WHEN coalesce(h.n_doctors, 0) <= 1 OR u.expected - h.top_expected <= 0 THEN NULL
                ELSE (u.observed - h.top_observed) / (u.expected - h.top_expected) END AS rest_oe
    FROM unit u LEFT JOIN heaviest h USING (fixmedins_code, dept)
    WHERE u.expected > 0
), hit_unit AS (
    SELECT * FROM scored
    WHERE visits >= CASE WHEN dept = '*' THEN $min_visits_institution ELSE $min_visits_department END
      AND oe >= $min_ratio AND z >= $min_z AND observed - expected >= $min_excess_exams
      AND (n_doctors <= 1 OR rest_oe >= $min_ratio_rest)
), doctor AS (       -- the doctors who carry a hit department's excess
    SELECT 'prac' AS entity_type, d.prac_code AS entity_id, d.fixmedins_code,
           sum(d.visits) AS visits, sum(d.observed) AS observed, sum(d.expected) AS expected,
           sum(d.exam_amt) AS exam_amt, min(d.first_time) AS first_time, list(d.dept ORDER BY d.dept) AS depts
    FROM per_doctor d JOIN hit_unit u USING (fixmedins_code, dept)
    WHERE d.expected > 0 AND d.observed / d.expected >= $min_ratio_rest
    GROUP BY d.prac_code, d.fixmedins_code
), doctor_scored AS (
    SELECT *, observed / expected AS oe, (observed - $min_ratio * expected) / sqrt($min_ratio * expected) AS z,
           exam_amt * (observed - expected) / nullif(observed, 0) AS excess_amt
    FROM doctor
), institution AS (  -- on its own figures, or through its hit departments (the institution bills for them)
    SELECT s.fixmedins_code, s.visits, s.observed, s.expected, s.oe, s.z, s.exam_amt, s.first_time, s.excess_amt,
           s.fixmedins_code IN (SELECT fixmedins_code FROM hit_unit WHERE dept = '*') AS own,
           coalesce(dp.n_depts, 0) AS n_depts, coalesce(dp.depts, []) AS depts,
           coalesce(dp.excess_amt, 0) AS depts_excess_amt, dp.depts_zh,
           coalesce(dc.n_doctors, 0) AS n_doctors, coalesce(dc.doctors, []) AS doctors, dc.doctors_zh
    FROM scored s
    LEFT JOIN (SELECT fixmedins_code, count(*) AS n_depts, list(dept ORDER BY dept) AS depts,
                      sum(excess_amt) AS excess_amt,
                      string_agg(dept || '科室' || CAST(round(oe, 2) AS VARCHAR) || '倍', '、' ORDER BY oe DESC)
                          AS depts_zh
               FROM hit_unit WHERE dept <> '*' GROUP BY fixmedins_code) dp USING (fixmedins_code)
    LEFT JOIN (SELECT fixmedins_code, count(*) AS n_doctors, list(entity_id ORDER BY entity_id) AS doctors,
                      string_agg(entity_id || ' ' || CAST(round(oe, 2) AS VARCHAR) || '倍', '、' ORDER BY oe DESC)
                          AS doctors_zh
               FROM doctor_scored GROUP BY fixmedins_code) dc USING (fixmedins_code)
    WHERE s.dept = '*'
), flagged AS (
    SELECT entity_type, entity_id, fixmedins_code, visits, observed, expected, oe, z, exam_amt, first_time,
           excess_amt AS amount, true AS own, depts, 0 AS n_doctors, []::VARCHAR[] AS doctors, NULL AS doctors_zh,
           NULL AS depts_zh
    FROM doctor_scored
    UNION ALL
    SELECT 'fixmedins', fixmedins_code, fixmedins_code, visits, observed, expected, oe, z, exam_amt, first_time,
           greatest(CASE WHEN own THEN excess_amt ELSE 0 END, depts_excess_amt), own, depts, n_doctors, doctors,
           doctors_zh, depts_zh
    FROM institution WHERE own OR n_depts > 0
), lines AS (        -- the exam lines of the visits behind the hit
    SELECT f.entity_type, f.entity_id, l.bkkp_sn, l.det_item_fee_sumamt,
           row_number() OVER (PARTITION BY f.entity_type, f.entity_id
                              ORDER BY l.det_item_fee_sumamt DESC, l.bkkp_sn) AS k
    FROM flagged f
    JOIN comparable c ON c.fixmedins_code = f.fixmedins_code
                         AND CASE WHEN f.entity_type = 'prac' THEN c.prac_code = f.entity_id AND list_contains(f.depts, c.dept)
                                  WHEN f.own THEN true
                                  ELSE list_contains(f.depts, c.dept) END
    JOIN claim_line l ON l.mdtrt_id = c.mdtrt_id AND list_contains($exam_chrgitm_types, l.med_chrgitm_type)
), evidence AS (
    SELECT entity_type, entity_id, list(bkkp_sn ORDER BY bkkp_sn) FILTER (WHERE k <= $max_evidence_lines) AS evidence,
           count(*) AS n_lines
    FROM lines GROUP BY ALL
)
SELECT f.entity_type, f.entity_id, NULL AS setl_id, NULL AS mdtrt_id, NULL AS psn_no,
       CASE WHEN f.entity_type = 'fixmedins' THEN f.fixmedins_code END AS fixmedins_code,
       CASE WHEN f.entity_type = 'prac' THEN f.entity_id END AS prac_code, e.evidence,
       -- to the cent, half away from zero, as floor(|x|·100 + 0.5): round() of a DOUBLE at a half cent goes
       -- up on DuckDB (x·100 first) and down on Spark (the double's exact decimal value)
       sign(f.amount) * floor(abs(f.amount) * 100 + 0.5) / 100 AS amount_at_risk, f.first_time AS event_time,
       {'finding_zh': printf('%s%d人次就诊共开检查检验%s项，按同级同科室、同诊断、同合并症的其他机构水平应为%s项'
                             || '（人次均%s对%s），为同类的%s倍',
                             CASE f.entity_type WHEN 'prac' THEN '该医师（' || f.fixmedins_code || '）' ELSE '本机构' END,
                             f.visits,
                             CAST(round(f.observed, 1) AS VARCHAR), CAST(round(f.expected, 1) AS VARCHAR),
                             CAST(round(f.observed / f.visits, 2) AS VARCHAR),
                             CAST(round(f.expected / f.visits, 2) AS VARCHAR), CAST(round(f.oe, 2) AS VARCHAR))
                      || CASE WHEN f.entity_type = 'prac'
                              THEN printf('，所在科室（%s）整体明显偏高', array_to_string(f.depts, '、'))
                              WHEN f.own THEN printf('（限度%s倍）', CAST($min_ratio AS VARCHAR)) ELSE '' END
                      || CASE WHEN f.depts_zh IS NOT NULL THEN printf('；其中%s整体明显偏高（限度%s倍）', f.depts_zh,
                                                                    CAST($min_ratio AS VARCHAR))
                              ELSE '' END
                      || CASE WHEN f.n_doctors > 0 THEN printf('；开单医师%d名（%s）', f.n_doctors, f.doctors_zh)
                              ELSE '' END,
        'institution': f.fixmedins_code, 'visits': f.visits, 'observed': round(f.observed, 1), 'expected': round(f.expected, 1),
        'ratio': round(f.oe, 2), 'z': round(f.z, 1), 'own_figures': f.own, 'departments': f.depts, 'doctors': f.doctors,
        'exam_amount': CAST(round(f.exam_amt, 2) AS DECIMAL(18, 2)), 'n_lines': e.n_lines} AS detail
FROM flagged f JOIN evidence e USING (entity_type, entity_id)
