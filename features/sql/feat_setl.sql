-- 结算/就诊级特征 feat_setl: one row per settlement that counts (the visit level), keyed setl_id.
-- Reads the staging tables of _stage.sql. Shares are of the settlement's line amount; the peer group
-- of a settlement is settlements of the same medical type (医疗类别) at institutions of the same type
-- and grade. Rule-hit and graph columns are joined on by the runner.
WITH stay AS (
    -- for an inpatient settlement: what else the person did while admitted
    SELECT stay_setl_id AS setl_id,
           COUNT(*) AS n_other_setl_during_stay,
           SUM(other_is_elsewhere) AS n_elsewhere_during_stay,
           SUM(other_amt) AS amt_other_setl_during_stay
    FROM stg_during_stay
    GROUP BY stay_setl_id
),
during AS (
    -- for any settlement: was the person admitted somewhere else at that moment
    SELECT other_setl_id AS setl_id, MAX(other_is_elsewhere) AS is_during_other_stay
    FROM stg_during_stay
    GROUP BY other_setl_id
),
peer AS (
    SELECT setl_id,
           (amt - AVG(CAST(amt AS DOUBLE)) OVER w) / NULLIF(STDDEV_POP(CAST(amt AS DOUBLE)) OVER w, 0)
               AS z_amt_peer,
           PERCENT_RANK() OVER (PARTITION BY med_type, fixmedins_type, hosp_level ORDER BY ROUND(amt, 6))
               AS pct_amt_peer,
           COUNT(*) OVER (PARTITION BY psn_no, setl_date) AS n_psn_setl_same_day
    FROM stg_visit
    -- ordered by the key over the whole group: the deviation adds in that order, the same run after run
    WINDOW w AS (PARTITION BY med_type, fixmedins_type, hosp_level ORDER BY setl_id
                 ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
)
SELECT v.setl_id, v.mdtrt_id, v.psn_no, v.fixmedins_code, v.chfpdr_code AS prac_code,
       v.setl_time,
       v.amt AS medfee_amt, v.fund_amt, v.psn_pay_amt, v.acct_pay_amt,
       v.fund_amt / NULLIF(v.amt, 0) AS fund_share,
       v.is_inpatient, v.is_pharmacy, v.is_chronic, v.is_emergency,
       v.hosp_level, v.age_years, v.age_days,
       v.ipt_days, v.stay_days,
       v.n_lines, v.n_items, v.n_exam, v.n_lab, v.n_treatment,
       v.n_lines / NULLIF(GREATEST(v.stay_days, 1), 0) AS lines_per_day,
       v.n_care_days / NULLIF(GREATEST(v.stay_days, 1), 0) AS care_day_share,
       v.amt_exam / NULLIF(v.line_amt, 0) AS exam_share,
       v.amt_lab / NULLIF(v.line_amt, 0) AS lab_share,
       v.amt_drug / NULLIF(v.line_amt, 0) AS drug_share,
       v.amt_consumable / NULLIF(v.line_amt, 0) AS consumable_share,
       v.amt_bed / NULLIF(v.line_amt, 0) AS bed_share,
       v.amt_treatment / NULLIF(v.line_amt, 0) AS treatment_share,
       v.amt_class_a / NULLIF(v.line_amt, 0) AS class_a_share,
       v.amt_class_b / NULLIF(v.line_amt, 0) AS class_b_share,
       v.amt_class_c / NULLIF(v.line_amt, 0) AS class_c_share,
       v.amt_vbp_nonselected / NULLIF(v.amt_vbp_group, 0) AS vbp_nonselected_share,
       v.n_over_cap, v.over_cap_amt,
       v.n_dialysis, v.n_rehab, v.n_psychiatry,
       v.drug_supply_days,
       v.setl_hour, v.weekday, v.is_weekend, v.is_off_hours, v.is_round,
       v.admdvs_distance,
       CASE WHEN v.admdvs_distance >= 2 THEN 1 ELSE 0 END AS is_out_of_region,
       v.is_injury, v.is_after_death,
       v.n_same_inst_10min,
       p.n_psn_setl_same_day,
       r.days_since_prev_discharge,
       CASE WHEN r.days_since_prev_discharge <= 15 THEN 1 ELSE 0 END AS is_readmit_15d,
       COALESCE(st.n_other_setl_during_stay, 0) AS n_other_setl_during_stay,
       COALESCE(st.n_elsewhere_during_stay, 0) AS n_elsewhere_during_stay,
       COALESCE(st.amt_other_setl_during_stay, 0) AS amt_other_setl_during_stay,
       COALESCE(d.is_during_other_stay, 0) AS is_during_other_stay,
       p.z_amt_peer, p.pct_amt_peer
FROM stg_visit v
JOIN peer p ON p.setl_id = v.setl_id
LEFT JOIN stg_readmit r ON r.setl_id = v.setl_id
LEFT JOIN stay st ON st.setl_id = v.setl_id
LEFT JOIN during d ON d.setl_id = v.setl_id
