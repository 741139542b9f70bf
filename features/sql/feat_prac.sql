-- 医师级特征 feat_prac: one row per practitioner (practitioner), keyed prac_code.
-- A visit belongs to its chief doctor (mdtrt_d.chfpdr_code). Peer group: doctors of the same specialty
-- (caty; all doctors when fewer than 5 share it) who had visits in the window; z-score and
-- percent rank within it (过度检查: exams per visit far above peers).
WITH vol AS (
    SELECT chfpdr_code AS prac_code,
           SUM(CASE WHEN age_days < 30 THEN 1 ELSE 0 END) AS n_visits_30,
           SUM(CASE WHEN age_days < 90 THEN 1 ELSE 0 END) AS n_visits_90,
           SUM(CASE WHEN age_days < 365 THEN 1 ELSE 0 END) AS n_visits_365,
           SUM(CASE WHEN age_days < 30 THEN amt ELSE 0 END) AS amt_30,
           SUM(CASE WHEN age_days < 90 THEN amt ELSE 0 END) AS amt_90,
           SUM(CASE WHEN age_days < 365 THEN amt ELSE 0 END) AS amt_365,
           SUM(CASE WHEN age_days < 365 THEN fund_amt ELSE 0 END) AS fund_amt_365
    FROM stg_visit
    WHERE chfpdr_code IS NOT NULL
    GROUP BY chfpdr_code
),
y AS (
    SELECT chfpdr_code AS prac_code,
           COUNT(DISTINCT psn_no) AS n_patients_365,
           COUNT(DISTINCT setl_date) AS n_active_days_365,
           SUM(is_inpatient) AS n_inpatient_365,
           SUM(amt) / COUNT(*) AS amt_per_visit,
           SUM(n_exam) / COUNT(*) AS exams_per_visit,
           SUM(n_lab) / COUNT(*) AS labs_per_visit,
           SUM(n_lines) / COUNT(*) AS lines_per_visit,
           SUM(amt_exam) / NULLIF(SUM(line_amt), 0) AS exam_share,
           SUM(amt_lab) / NULLIF(SUM(line_amt), 0) AS lab_share,
           SUM(amt_drug) / NULLIF(SUM(line_amt), 0) AS drug_share,
           SUM(amt_consumable) / NULLIF(SUM(line_amt), 0) AS consumable_share,
           SUM(amt_class_c) / NULLIF(SUM(line_amt), 0) AS class_c_share,
           SUM(amt_vbp_nonselected) / NULLIF(SUM(amt_vbp_group), 0) AS vbp_nonselected_share,
           SUM(n_over_cap) AS n_over_cap_365,
           AVG(CAST(is_off_hours AS DOUBLE)) AS off_hours_share,
           AVG(CAST(is_weekend AS DOUBLE)) AS weekend_share,
           AVG(CAST(is_round AS DOUBLE)) AS round_share,
           AVG(CAST(CASE WHEN admdvs_distance >= 2 THEN 1 ELSE 0 END AS DOUBLE)) AS out_of_region_share
    FROM stg_visit
    WHERE chfpdr_code IS NOT NULL AND age_days < 365
    GROUP BY chfpdr_code
),
busiest AS (
    SELECT prac_code, MAX(n) AS max_visits_per_day
    FROM (SELECT chfpdr_code AS prac_code, setl_date, COUNT(*) AS n FROM stg_visit
          WHERE chfpdr_code IS NOT NULL AND age_days < 365 GROUP BY chfpdr_code, setl_date) d
    GROUP BY prac_code
),
base AS (
    SELECT d.prac_code, d.fixmedins_code, i.hosp_level,
           COALESCE(d.caty, d.dept_codg, '-') AS specialty,
           CASE WHEN y.prac_code IS NULL THEN 0 ELSE 1 END AS is_active_365,
           v.n_visits_30, v.n_visits_90, v.n_visits_365, v.amt_30, v.amt_90, v.amt_365, v.fund_amt_365,
           y.n_patients_365, y.n_active_days_365, y.n_inpatient_365,
           COALESCE(y.amt_per_visit, 0) AS amt_per_visit,
           COALESCE(y.exams_per_visit, 0) AS exams_per_visit,
           COALESCE(y.labs_per_visit, 0) AS labs_per_visit,
           COALESCE(y.lines_per_visit, 0) AS lines_per_visit,
           COALESCE(y.exam_share, 0) AS exam_share, COALESCE(y.lab_share, 0) AS lab_share,
           COALESCE(y.drug_share, 0) AS drug_share, COALESCE(y.consumable_share, 0) AS consumable_share,
           COALESCE(y.class_c_share, 0) AS class_c_share,
           COALESCE(y.vbp_nonselected_share, 0) AS vbp_nonselected_share,
           y.n_over_cap_365,
           COALESCE(y.off_hours_share, 0) AS off_hours_share, COALESCE(y.weekend_share, 0) AS weekend_share,
           COALESCE(y.round_share, 0) AS round_share, COALESCE(y.out_of_region_share, 0) AS out_of_region_share,
           COALESCE(v.n_visits_365 / NULLIF(y.n_active_days_365, 0), 0)
               AS visits_per_active_day,
           b.max_visits_per_day,
           COUNT(*) OVER (PARTITION BY COALESCE(d.caty, d.dept_codg, '-'),
                                       CASE WHEN y.prac_code IS NULL THEN 0 ELSE 1 END) AS n_same_specialty
    FROM practitioner d
    LEFT JOIN stg_inst i ON i.fixmedins_code = d.fixmedins_code
    LEFT JOIN vol v ON v.prac_code = d.prac_code
    LEFT JOIN y ON y.prac_code = d.prac_code
    LEFT JOIN busiest b ON b.prac_code = d.prac_code
),
peer AS (
    SELECT base.*,
           CAST(is_active_365 AS VARCHAR) || '|' || CASE WHEN n_same_specialty >= 5 THEN specialty ELSE '*' END
               AS peer_group
    FROM base
)
SELECT prac_code, fixmedins_code, peer_group,
       hosp_level, is_active_365,
       n_visits_30, n_visits_90, n_visits_365, amt_30, amt_90, amt_365, fund_amt_365,
       n_patients_365, n_active_days_365, n_inpatient_365,
       amt_per_visit, exams_per_visit, labs_per_visit, lines_per_visit,
       exam_share, lab_share, drug_share, consumable_share, class_c_share, vbp_nonselected_share,
       n_over_cap_365, off_hours_share, weekend_share, round_share, out_of_region_share,
       visits_per_active_day, max_visits_per_day,
       COUNT(*) OVER (PARTITION BY peer_group) AS peer_group_size,
       (exams_per_visit - AVG(exams_per_visit) OVER w) / NULLIF(STDDEV_POP(exams_per_visit) OVER w, 0)
           AS z_exams_per_visit,
       PERCENT_RANK() OVER (PARTITION BY peer_group ORDER BY ROUND(exams_per_visit, 9)) AS pct_exams_per_visit,
       (labs_per_visit - AVG(labs_per_visit) OVER w) / NULLIF(STDDEV_POP(labs_per_visit) OVER w, 0)
           AS z_labs_per_visit,
       PERCENT_RANK() OVER (PARTITION BY peer_group ORDER BY ROUND(labs_per_visit, 9)) AS pct_labs_per_visit,
       (amt_per_visit - AVG(amt_per_visit) OVER w) / NULLIF(STDDEV_POP(amt_per_visit) OVER w, 0)
           AS z_amt_per_visit,
       PERCENT_RANK() OVER (PARTITION BY peer_group ORDER BY ROUND(amt_per_visit, 9)) AS pct_amt_per_visit,
       (drug_share - AVG(drug_share) OVER w) / NULLIF(STDDEV_POP(drug_share) OVER w, 0) AS z_drug_share,
       PERCENT_RANK() OVER (PARTITION BY peer_group ORDER BY ROUND(drug_share, 9)) AS pct_drug_share,
       (off_hours_share - AVG(off_hours_share) OVER w) / NULLIF(STDDEV_POP(off_hours_share) OVER w, 0)
           AS z_off_hours_share,
       PERCENT_RANK() OVER (PARTITION BY peer_group ORDER BY ROUND(off_hours_share, 9)) AS pct_off_hours_share,
       (round_share - AVG(round_share) OVER w) / NULLIF(STDDEV_POP(round_share) OVER w, 0) AS z_round_share,
       PERCENT_RANK() OVER (PARTITION BY peer_group ORDER BY ROUND(round_share, 9)) AS pct_round_share,
       (visits_per_active_day - AVG(visits_per_active_day) OVER w)
           / NULLIF(STDDEV_POP(visits_per_active_day) OVER w, 0) AS z_visits_per_active_day,
       PERCENT_RANK() OVER (PARTITION BY peer_group ORDER BY ROUND(visits_per_active_day, 9))
           AS pct_visits_per_active_day
FROM peer
-- ordered by the key over the whole group: the mean and deviation add in that order, the same run after run
WINDOW w AS (PARTITION BY peer_group ORDER BY prac_code, fixmedins_code ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
