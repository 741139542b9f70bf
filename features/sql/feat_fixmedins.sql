-- 医疗机构级特征 feat_fixmedins: one row per hospital or clinic (fixmedins_type <> 'pharmacy'),
-- keyed fixmedins_code. Volumes over 30/90/365 days; mix, intensity, timing and the focus areas
-- (dialysis, rehabilitation, psychiatry: 虚假诊疗) over 365 days; 进销存 gap; 异常变化 of key items;
-- peer comparison against institutions of the same type, grade and main specialty (主要科室: the
-- admission department with most visits); when fewer than 5 share all three, the same type and grade;
-- when still fewer than 5, the same type.
WITH vol AS (
    SELECT fixmedins_code,
           SUM(CASE WHEN age_days < 30 THEN 1 ELSE 0 END) AS n_setl_30,
           SUM(CASE WHEN age_days < 90 THEN 1 ELSE 0 END) AS n_setl_90,
           SUM(CASE WHEN age_days < 365 THEN 1 ELSE 0 END) AS n_setl_365,
           SUM(CASE WHEN age_days < 30 THEN amt ELSE 0 END) AS amt_30,
           SUM(CASE WHEN age_days < 90 THEN amt ELSE 0 END) AS amt_90,
           SUM(CASE WHEN age_days < 365 THEN amt ELSE 0 END) AS amt_365,
           SUM(CASE WHEN age_days < 365 THEN fund_amt ELSE 0 END) AS fund_amt_365
    FROM stg_visit
    GROUP BY fixmedins_code
),
y AS (
    SELECT fixmedins_code,
           COUNT(DISTINCT psn_no) AS n_patients_365,
           COUNT(DISTINCT setl_date) AS n_active_days_365,
           SUM(is_inpatient) AS n_inpatient_365,
           SUM(is_chronic) AS n_chronic_365,
           SUM(amt) / COUNT(*) AS amt_per_visit,
           SUM(n_lines) / COUNT(*) AS lines_per_visit,
           SUM(n_exam) / COUNT(*) AS exams_per_visit,
           SUM(n_lab) / COUNT(*) AS labs_per_visit,
           SUM(amt_exam) / NULLIF(SUM(line_amt), 0) AS exam_share,
           SUM(amt_lab) / NULLIF(SUM(line_amt), 0) AS lab_share,
           SUM(amt_drug) / NULLIF(SUM(line_amt), 0) AS drug_share,
           SUM(amt_consumable) / NULLIF(SUM(line_amt), 0) AS consumable_share,
           SUM(amt_bed) / NULLIF(SUM(line_amt), 0) AS bed_share,
           SUM(amt_treatment) / NULLIF(SUM(line_amt), 0) AS treatment_share,
           SUM(amt_class_a) / NULLIF(SUM(line_amt), 0) AS class_a_share,
           SUM(amt_class_b) / NULLIF(SUM(line_amt), 0) AS class_b_share,
           SUM(amt_class_c) / NULLIF(SUM(line_amt), 0) AS class_c_share,
           SUM(amt_vbp_nonselected) / NULLIF(SUM(amt_vbp_group), 0) AS vbp_nonselected_share,
           SUM(qty_vbp_nonselected) / NULLIF(SUM(qty_vbp_group), 0) AS vbp_nonselected_qty_share,
           SUM(n_over_cap) AS n_over_cap_365,
           SUM(over_cap_amt) AS over_cap_amt_365,
           AVG(CAST(is_off_hours AS DOUBLE)) AS off_hours_share,
           AVG(CAST(is_weekend AS DOUBLE)) AS weekend_share,
           AVG(CAST(is_round AS DOUBLE)) AS round_share,
           AVG(CAST(CASE WHEN admdvs_distance >= 2 THEN 1 ELSE 0 END AS DOUBLE)) AS out_of_region_share,
           AVG(CAST(is_injury AS DOUBLE)) AS injury_share,
           SUM(n_dialysis) AS n_dialysis_365,
           SUM(n_rehab) AS n_rehab_365,
           SUM(n_psychiatry) AS n_psychiatry_365,
           SUM(n_treatment) / NULLIF(COUNT(DISTINCT psn_no), 0) AS treatments_per_patient,
           MAX(n_same_inst_10min) AS max_setl_within_10min
    FROM stg_visit
    WHERE age_days < 365
    GROUP BY fixmedins_code
),
stays AS (
    -- inpatient stays: length, short and cheap admissions (低标准入院), readmissions (分解住院), care days
    SELECT v.fixmedins_code,
           AVG(CAST(v.ipt_days AS DOUBLE)) AS avg_ipt_days,
           SUM(v.ipt_days) AS ipt_days_365,
           AVG(CAST(CASE WHEN v.ipt_days <= 2 THEN 1 ELSE 0 END AS DOUBLE)) AS short_stay_share,
           AVG(CAST(CASE WHEN r.days_since_prev_discharge <= 15 THEN 1 ELSE 0 END AS DOUBLE)) AS readmit_15d_share,
           AVG(v.n_care_days / NULLIF(CAST(GREATEST(v.stay_days, 1) AS DOUBLE), 0) ORDER BY v.setl_id)
               AS avg_care_day_share,
           AVG(v.amt / NULLIF(CAST(GREATEST(v.stay_days, 1) AS DOUBLE), 0) ORDER BY v.setl_id)
               AS amt_per_inpatient_day
    FROM stg_visit v
    LEFT JOIN stg_readmit r ON r.setl_id = v.setl_id
    WHERE v.is_inpatient = 1 AND v.age_days < 365
    GROUP BY v.fixmedins_code
),
elsewhere AS (
    -- inpatients of this institution who settled elsewhere during their stay (挂床)
    SELECT v.fixmedins_code, AVG(CAST(CASE WHEN d.n > 0 THEN 1 ELSE 0 END AS DOUBLE)) AS stays_active_elsewhere_share
    FROM stg_visit v
    LEFT JOIN (SELECT stay_setl_id, SUM(other_is_elsewhere) AS n FROM stg_during_stay GROUP BY stay_setl_id) d
           ON d.stay_setl_id = v.setl_id
    WHERE v.is_inpatient = 1 AND v.age_days < 365
    GROUP BY v.fixmedins_code
),
dialysis_week AS (
    -- 血液透析 sessions per patient and week: more than 3 a week is implausible
    SELECT fixmedins_code, MAX(n) AS max_dialysis_per_patient_week,
           AVG(CAST(CASE WHEN n > 3 THEN 1 ELSE 0 END AS DOUBLE)) AS dialysis_weeks_over_3_share
    FROM (SELECT fixmedins_code, psn_no, DATE_DIFF('day', DATE '1970-01-05', fee_date) // 7 AS week_idx,
                 SUM(cnt) AS n
          FROM stg_line
          WHERE is_dialysis = 1 AND age_days < 365
          GROUP BY fixmedins_code, psn_no, DATE_DIFF('day', DATE '1970-01-05', fee_date) // 7) w
    GROUP BY fixmedins_code
),
busiest AS (
    SELECT fixmedins_code, MAX(n) AS max_setl_per_day
    FROM (SELECT fixmedins_code, setl_date, COUNT(*) AS n FROM stg_visit WHERE age_days < 365
          GROUP BY fixmedins_code, setl_date) d
    GROUP BY fixmedins_code
),
refunds AS (
    SELECT fixmedins_code, SUM(is_refund) AS n_refund_365
    FROM stg_refunded
    WHERE setl_time <= {{ as_of }} AND DATE_DIFF('day', CAST(setl_time AS DATE), CAST({{ as_of }} AS DATE)) < 365
    GROUP BY fixmedins_code
),
main_dept AS (
    SELECT fixmedins_code, adm_dept_codg AS main_dept
    FROM (SELECT fixmedins_code, adm_dept_codg,
                 ROW_NUMBER() OVER (PARTITION BY fixmedins_code ORDER BY COUNT(*) DESC, adm_dept_codg) AS rn
          FROM stg_visit
          WHERE age_days < 365 AND adm_dept_codg IS NOT NULL
          GROUP BY fixmedins_code, adm_dept_codg) d
    WHERE rn = 1
),
base AS (
    SELECT i.fixmedins_code, i.fixmedins_type, i.hosp_level,
           CASE WHEN i.fixmedins_type = 'hospital' THEN 1 ELSE 0 END AS is_hospital,
           COALESCE(i.beds, 0) AS beds,
           i.fixmedins_type || '|' || CAST(i.hosp_level AS VARCHAR) || '|' || COALESCE(md.main_dept, '-') AS k3,
           i.fixmedins_type || '|' || CAST(i.hosp_level AS VARCHAR) AS k2,
           i.fixmedins_type AS k1,
           v.n_setl_30, v.n_setl_90, v.n_setl_365, v.amt_30, v.amt_90, v.amt_365, v.fund_amt_365,
           y.n_patients_365, y.n_active_days_365, y.n_inpatient_365, y.n_chronic_365,
           COALESCE(y.amt_per_visit, 0) AS amt_per_visit,
           COALESCE(y.lines_per_visit, 0) AS lines_per_visit,
           COALESCE(y.exams_per_visit, 0) AS exams_per_visit,
           COALESCE(y.labs_per_visit, 0) AS labs_per_visit,
           COALESCE(y.exam_share, 0) AS exam_share, COALESCE(y.lab_share, 0) AS lab_share,
           COALESCE(y.drug_share, 0) AS drug_share, COALESCE(y.consumable_share, 0) AS consumable_share,
           y.bed_share, y.treatment_share, y.class_a_share, y.class_b_share, y.class_c_share,
           COALESCE(y.vbp_nonselected_share, 0) AS vbp_nonselected_share, y.vbp_nonselected_qty_share,
           y.n_over_cap_365, y.over_cap_amt_365,
           COALESCE(y.off_hours_share, 0) AS off_hours_share, y.weekend_share,
           COALESCE(y.round_share, 0) AS round_share,
           y.out_of_region_share, y.injury_share,
           y.n_dialysis_365, y.n_rehab_365, y.n_psychiatry_365, y.treatments_per_patient,
           y.max_setl_within_10min, b.max_setl_per_day,
           v.n_setl_365 / NULLIF(CAST(y.n_active_days_365 AS DOUBLE), 0) AS setl_per_active_day,
           COALESCE(s.avg_ipt_days, 0) AS avg_ipt_days, s.ipt_days_365, s.short_stay_share, s.readmit_15d_share,
           s.avg_care_day_share, s.amt_per_inpatient_day,
           s.ipt_days_365 / NULLIF(CAST(i.beds AS DOUBLE) * 365, 0) AS bed_occupancy,
           e.stays_active_elsewhere_share,
           dw.max_dialysis_per_patient_week, dw.dialysis_weeks_over_3_share,
           rf.n_refund_365,
           CASE WHEN g.fixmedins_code IS NULL THEN 0 ELSE 1 END AS has_stock_records,
           g.stock_gap_qty, g.stock_gap_amt, g.n_stock_gap_item_months,
           g.stock_gap_qty / NULLIF(g.billed_drug_qty, 0) AS stock_gap_ratio,
           m.mom_max_growth_key_items, m.mom_n_doublings_key_items,
           m.qty_last_month / NULLIF(m.qty_prev_month, 0) - 1 AS mom_last_growth_key_items
    FROM stg_inst i
    LEFT JOIN main_dept md ON md.fixmedins_code = i.fixmedins_code
    LEFT JOIN vol v ON v.fixmedins_code = i.fixmedins_code
    LEFT JOIN y ON y.fixmedins_code = i.fixmedins_code
    LEFT JOIN stays s ON s.fixmedins_code = i.fixmedins_code
    LEFT JOIN elsewhere e ON e.fixmedins_code = i.fixmedins_code
    LEFT JOIN dialysis_week dw ON dw.fixmedins_code = i.fixmedins_code
    LEFT JOIN busiest b ON b.fixmedins_code = i.fixmedins_code
    LEFT JOIN refunds rf ON rf.fixmedins_code = i.fixmedins_code
    LEFT JOIN stg_stock_gap g ON g.fixmedins_code = i.fixmedins_code
    LEFT JOIN stg_mom m ON m.fixmedins_code = i.fixmedins_code
    WHERE i.fixmedins_type <> 'pharmacy'
),
peer AS (
    SELECT base.*,
           CASE WHEN COUNT(*) OVER (PARTITION BY k3) >= 5 THEN k3
                WHEN COUNT(*) OVER (PARTITION BY k2) >= 5 THEN k2
                ELSE k1 END AS peer_group
    FROM base
)
SELECT fixmedins_code, peer_group,
       is_hospital, hosp_level, beds,
       n_setl_30, n_setl_90, n_setl_365, amt_30, amt_90, amt_365, fund_amt_365,
       n_patients_365, n_active_days_365, n_inpatient_365, n_chronic_365,
       amt_per_visit, lines_per_visit, exams_per_visit, labs_per_visit,
       exam_share, lab_share, drug_share, consumable_share, bed_share, treatment_share,
       class_a_share, class_b_share, class_c_share, vbp_nonselected_share, vbp_nonselected_qty_share,
       n_over_cap_365, over_cap_amt_365,
       off_hours_share, weekend_share, round_share, out_of_region_share, injury_share,
       n_dialysis_365, n_rehab_365, n_psychiatry_365, treatments_per_patient,
       max_setl_within_10min, max_setl_per_day, setl_per_active_day,
       avg_ipt_days, ipt_days_365, short_stay_share, readmit_15d_share, avg_care_day_share,
       amt_per_inpatient_day, bed_occupancy, stays_active_elsewhere_share,
       max_dialysis_per_patient_week, dialysis_weeks_over_3_share,
       n_refund_365,
       has_stock_records, stock_gap_qty, stock_gap_amt, n_stock_gap_item_months, stock_gap_ratio,
       mom_max_growth_key_items, mom_n_doublings_key_items, mom_last_growth_key_items,
       COUNT(*) OVER (PARTITION BY peer_group) AS peer_group_size,
       (exams_per_visit - AVG(exams_per_visit) OVER w) / NULLIF(STDDEV_POP(exams_per_visit) OVER w, 0)
           AS z_exams_per_visit,
       PERCENT_RANK() OVER (PARTITION BY peer_group ORDER BY ROUND(exams_per_visit, 9)) AS pct_exams_per_visit,
       (labs_per_visit - AVG(labs_per_visit) OVER w) / NULLIF(STDDEV_POP(labs_per_visit) OVER w, 0)
           AS z_labs_per_visit,
       PERCENT_RANK() OVER (PARTITION BY peer_group ORDER BY ROUND(labs_per_visit, 9)) AS pct_labs_per_visit,
       (lines_per_visit - AVG(lines_per_visit) OVER w) / NULLIF(STDDEV_POP(lines_per_visit) OVER w, 0)
           AS z_lines_per_visit,
       PERCENT_RANK() OVER (PARTITION BY peer_group ORDER BY ROUND(lines_per_visit, 9)) AS pct_lines_per_visit,
       (amt_per_visit - AVG(amt_per_visit) OVER w) / NULLIF(STDDEV_POP(amt_per_visit) OVER w, 0)
           AS z_amt_per_visit,
       PERCENT_RANK() OVER (PARTITION BY peer_group ORDER BY ROUND(amt_per_visit, 9)) AS pct_amt_per_visit,
       (drug_share - AVG(drug_share) OVER w) / NULLIF(STDDEV_POP(drug_share) OVER w, 0) AS z_drug_share,
       PERCENT_RANK() OVER (PARTITION BY peer_group ORDER BY ROUND(drug_share, 9)) AS pct_drug_share,
       (consumable_share - AVG(consumable_share) OVER w) / NULLIF(STDDEV_POP(consumable_share) OVER w, 0)
           AS z_consumable_share,
       PERCENT_RANK() OVER (PARTITION BY peer_group ORDER BY ROUND(consumable_share, 9)) AS pct_consumable_share,
       (off_hours_share - AVG(off_hours_share) OVER w) / NULLIF(STDDEV_POP(off_hours_share) OVER w, 0)
           AS z_off_hours_share,
       PERCENT_RANK() OVER (PARTITION BY peer_group ORDER BY ROUND(off_hours_share, 9)) AS pct_off_hours_share,
       (round_share - AVG(round_share) OVER w) / NULLIF(STDDEV_POP(round_share) OVER w, 0) AS z_round_share,
       PERCENT_RANK() OVER (PARTITION BY peer_group ORDER BY ROUND(round_share, 9)) AS pct_round_share,
       (vbp_nonselected_share - AVG(vbp_nonselected_share) OVER w)
           / NULLIF(STDDEV_POP(vbp_nonselected_share) OVER w, 0) AS z_vbp_nonselected_share,
       PERCENT_RANK() OVER (PARTITION BY peer_group ORDER BY ROUND(vbp_nonselected_share, 9))
           AS pct_vbp_nonselected_share,
       (avg_ipt_days - AVG(avg_ipt_days) OVER w) / NULLIF(STDDEV_POP(avg_ipt_days) OVER w, 0) AS z_avg_ipt_days,
       PERCENT_RANK() OVER (PARTITION BY peer_group ORDER BY ROUND(avg_ipt_days, 9)) AS pct_avg_ipt_days
FROM peer
-- ordered by the key over the whole group: the mean and deviation add in that order, the same run after run
WINDOW w AS (PARTITION BY peer_group ORDER BY fixmedins_code ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
