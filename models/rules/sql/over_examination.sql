-- 过度检查: a doctor or an institution whose visits carry far more exams and labs (med_chrgitm_type in
-- $exam_chrgitm_types: 检查费, 化验费) than the same visits get elsewhere.
-- Case mix (indirect standardisation, as a standardised ratio): every visit at an institution of a type in
-- $institution_types is compared with its peer cell — same care class, institution level, admission
-- department, main diagnosis category (ICD-10, 3 characters), number of other diagnosis categories (0, 1,
-- 2, 3+: sicker patients) and, for stays, length band (≤3, 4-7, 8-14, 15+ days). Expected exams = the
-- cell's norm: the median of its institutions' mean exams per visit, so that neither the institution
-- judged nor a few heavy examiners set it; a cell with fewer than $min_peer_institutions institutions has
-- no norm and its visits are left out. Observed/expected is the ratio.
-- A doctor (主诊医师, chfpdr_code) is hit with at least $min_visits_doctor comparable visits, a ratio of at
-- least $min_ratio_doctor — and above it beyond chance: z = (O − bar·E)/√(bar·E) ≥ $min_z, so that a few
-- dozen visits cannot carry an honest doctor over the bar — and $min_excess_exams exams above expectation.
-- An institution is hit on its own figures ($min_visits_institution visits, the bar $min_ratio_institution,
-- the same z and excess) or through its hit doctors: it bills for them (定点医疗机构主体责任).
-- A doctor's hit names the institution in its detail, not in fixmedins_code: the institution's own hit
-- already carries the doctor's excess, and a sum of hits per institution must not count it twice.
-- Evidence: the exam lines of the comparable visits behind the hit (the doctor's; the institution's, or
-- its hit doctors' when it is hit through them), the $max_evidence_lines largest; amount at risk: the
-- excess share (O − E)/O of their exams' amount.
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
), scored AS (      -- z: how far the observed exams lie above the bar (the ratio times the expectation)
    SELECT *, observed / expected AS oe,
           (observed - bar * expected) / sqrt(bar * expected) AS z,
           exam_amt * (observed - expected) / nullif(observed, 0) AS excess_amt
    FROM (SELECT *, CASE entity_type WHEN 'prac' THEN $min_ratio_doctor ELSE $min_ratio_institution END AS bar
          FROM ratio)
    WHERE expected > 0
), doctor AS (
    SELECT * FROM scored
    WHERE entity_type = 'prac' AND visits >= $min_visits_doctor AND oe >= $min_ratio_doctor AND z >= $min_z
      AND observed - expected >= $min_excess_exams
), institution AS (  -- on its own figures, or through its doctors (the institution bills for them)
    SELECT s.*, coalesce(d.n_doctors, 0) AS n_doctors, coalesce(d.doctors, []) AS doctors, d.doctors_zh,
           coalesce(d.excess_amt, 0) AS doctors_excess_amt,
           s.visits >= $min_visits_institution AND s.oe >= $min_ratio_institution AND s.z >= $min_z
               AND s.observed - s.expected >= $min_excess_exams AS own
    FROM scored s
    LEFT JOIN (SELECT fixmedins_code, count(*) AS n_doctors, list(entity_id ORDER BY entity_id) AS doctors,
                      sum(excess_amt) AS excess_amt,
                      string_agg(entity_id || ' ' || CAST(round(oe, 2) AS VARCHAR) || '倍', '、' ORDER BY oe DESC)
                          AS doctors_zh
               FROM doctor GROUP BY fixmedins_code) d USING (fixmedins_code)
    WHERE s.entity_type = 'fixmedins'
), flagged AS (
    SELECT entity_type, entity_id, fixmedins_code, visits, observed, expected, oe, z, exam_amt, first_time,
           excess_amt AS amount, true AS own, 0 AS n_doctors, []::VARCHAR[] AS doctors, NULL AS doctors_zh
    FROM doctor
    UNION ALL
    SELECT entity_type, entity_id, fixmedins_code, visits, observed, expected, oe, z, exam_amt, first_time,
           greatest(CASE WHEN own THEN excess_amt ELSE 0 END, doctors_excess_amt), own, n_doctors, doctors,
           doctors_zh
    FROM institution WHERE own OR n_doctors > 0
), lines AS (        -- the exam lines of the visits behind the hit
    SELECT f.entity_type, f.entity_id, l.bkkp_sn, l.det_item_fee_sumamt,
           row_number() OVER (PARTITION BY f.entity_type, f.entity_id
                              ORDER BY l.det_item_fee_sumamt DESC, l.bkkp_sn) AS k
    FROM flagged f
    JOIN comparable c ON CASE WHEN f.entity_type = 'prac' THEN c.prac_code = f.entity_id
                              WHEN f.own THEN c.fixmedins_code = f.entity_id
                              ELSE c.fixmedins_code = f.entity_id AND list_contains(f.doctors, c.prac_code) END
    JOIN claim_line l ON l.mdtrt_id = c.mdtrt_id AND list_contains($exam_chrgitm_types, l.med_chrgitm_type)
), evidence AS (
    SELECT entity_type, entity_id, list(bkkp_sn ORDER BY bkkp_sn) FILTER (WHERE k <= $max_evidence_lines) AS evidence,
           count(*) AS n_lines
    FROM lines GROUP BY ALL
)
SELECT f.entity_type, f.entity_id, NULL AS setl_id, NULL AS mdtrt_id, NULL AS psn_no,
       CASE WHEN f.entity_type = 'fixmedins' THEN f.fixmedins_code END AS fixmedins_code,
       CASE WHEN f.entity_type = 'prac' THEN f.entity_id END AS prac_code, e.evidence,
       round(f.amount, 2) AS amount_at_risk, f.first_time AS event_time,
       {'finding_zh': printf('%s%d人次就诊共开检查检验%s项，按同级同科室、同诊断、同合并症的其他机构水平应为%s项'
                             || '（人次均%s对%s），为同类的%s倍',
                             CASE f.entity_type WHEN 'prac' THEN '该医师（' || f.fixmedins_code || '）' ELSE '本机构' END,
                             f.visits,
                             CAST(round(f.observed, 1) AS VARCHAR), CAST(round(f.expected, 1) AS VARCHAR),
                             CAST(round(f.observed / f.visits, 2) AS VARCHAR),
                             CAST(round(f.expected / f.visits, 2) AS VARCHAR), CAST(round(f.oe, 2) AS VARCHAR))
                      || CASE WHEN f.entity_type = 'prac' THEN printf('（限度%s倍）', CAST($min_ratio_doctor AS VARCHAR))
                              WHEN f.own THEN printf('（限度%s倍）', CAST($min_ratio_institution AS VARCHAR)) ELSE '' END
                      || CASE WHEN f.n_doctors > 0 THEN printf('；其中%d名医师明显偏高（%s）', f.n_doctors, f.doctors_zh)
                              ELSE '' END,
        'institution': f.fixmedins_code, 'visits': f.visits, 'observed': round(f.observed, 1), 'expected': round(f.expected, 1),
        'ratio': round(f.oe, 2), 'z': round(f.z, 1), 'own_figures': f.own, 'doctors': f.doctors,
        'exam_amount': CAST(round(f.exam_amt, 2) AS DECIMAL(18, 2)), 'n_lines': e.n_lines} AS detail
FROM flagged f JOIN evidence e USING (entity_type, entity_id)
