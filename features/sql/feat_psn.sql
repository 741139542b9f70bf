-- 参保人级特征 feat_psn: one row per insured person (psn_info), keyed psn_no.
-- Volumes over 30/90/365 days; mix, timing and breadth over 365 days; death, stays, days supply
-- (超量/重复开药) and chronic-refill regularity (慢病取药规律性).
WITH vol AS (
    SELECT psn_no,
           SUM(CASE WHEN age_days < 30 THEN 1 ELSE 0 END) AS n_setl_30,
           SUM(CASE WHEN age_days < 90 THEN 1 ELSE 0 END) AS n_setl_90,
           SUM(CASE WHEN age_days < 365 THEN 1 ELSE 0 END) AS n_setl_365,
           SUM(CASE WHEN age_days < 30 THEN amt ELSE 0 END) AS amt_30,
           SUM(CASE WHEN age_days < 90 THEN amt ELSE 0 END) AS amt_90,
           SUM(CASE WHEN age_days < 365 THEN amt ELSE 0 END) AS amt_365,
           SUM(CASE WHEN age_days < 365 THEN fund_amt ELSE 0 END) AS fund_amt_365,
           SUM(is_after_death) AS n_setl_after_death,
           SUM(CASE WHEN is_after_death = 1 THEN amt ELSE 0 END) AS amt_after_death
    FROM stg_visit
    GROUP BY psn_no
),
y AS (
    SELECT psn_no,
           SUM(is_inpatient) AS n_inpatient_365,
           SUM(is_pharmacy) AS n_pharmacy_365,
           SUM(is_chronic) AS n_chronic_365,
           SUM(ipt_days) AS ipt_days_365,
           COUNT(DISTINCT CASE WHEN is_pharmacy = 0 THEN fixmedins_code END) AS n_distinct_fixmedins_365,
           COUNT(DISTINCT CASE WHEN is_pharmacy = 1 THEN fixmedins_code END) AS n_distinct_pharmacies_365,
           COUNT(DISTINCT CASE WHEN is_pharmacy = 0 THEN chfpdr_code END) AS n_distinct_doctors_365,
           COUNT(DISTINCT setl_date) AS n_active_days_365,
           SUM(amt_exam) / NULLIF(SUM(line_amt), 0) AS exam_share,
           SUM(amt_drug) / NULLIF(SUM(line_amt), 0) AS drug_share,
           SUM(amt_consumable) / NULLIF(SUM(line_amt), 0) AS consumable_share,
           SUM(amt_class_c) / NULLIF(SUM(line_amt), 0) AS class_c_share,
           SUM(amt_vbp_nonselected) / NULLIF(SUM(amt_vbp_group), 0) AS vbp_nonselected_share,
           AVG(CAST(is_off_hours AS DOUBLE)) AS off_hours_share,
           AVG(CAST(is_weekend AS DOUBLE)) AS weekend_share,
           AVG(CAST(is_round AS DOUBLE)) AS round_share,
           AVG(CAST(admdvs_distance AS DOUBLE)) AS avg_admdvs_distance,
           MAX(admdvs_distance) AS max_admdvs_distance,
           SUM(CASE WHEN admdvs_distance >= 2 THEN 1 ELSE 0 END) AS n_out_of_region_setl_365,
           SUM(is_injury) AS n_injury_365,
           MAX(amt) AS max_setl_amt_365
    FROM stg_visit
    WHERE age_days < 365
    GROUP BY psn_no
),
refunds AS (
    SELECT psn_no, SUM(is_refund) AS n_refund_365
    FROM stg_refunded
    WHERE setl_time <= {{ as_of }} AND DATE_DIFF('day', CAST(setl_time AS DATE), CAST({{ as_of }} AS DATE)) < 365
    GROUP BY psn_no
),
own_stay AS (
    -- settlements elsewhere while the person was admitted (盗刷 / 挂床)
    SELECT psn_no, SUM(other_is_elsewhere) AS n_setl_during_own_stay,
           SUM(CASE WHEN other_is_elsewhere = 1 THEN other_amt ELSE 0 END) AS amt_setl_during_own_stay,
           SUM(CASE WHEN other_is_elsewhere = 1 THEN other_is_pharmacy ELSE 0 END) AS n_pharmacy_during_own_stay
    FROM stg_during_stay
    GROUP BY psn_no
),
supply_drug AS (
    -- per medicine: days supplied vs the calendar days from the first fill to the end of the last one
    SELECT psn_no, drug_key,
           SUM(prd_days) AS supply_days,
           DATE_DIFF('day', MIN(fee_date), MAX(fee_date)) + MAX(prd_days) AS covered_days,
           COUNT(DISTINCT fixmedins_code) AS n_sources
    FROM stg_line
    WHERE cat = 'drug' AND prd_days > 0 AND age_days < 365
    GROUP BY psn_no, drug_key
),
supply AS (
    SELECT psn_no,
           MAX(supply_days / NULLIF(covered_days, 0)) AS max_supply_ratio,
           SUM(GREATEST(supply_days - covered_days, 0)) AS excess_supply_days,
           SUM(CASE WHEN supply_days > 1.5 * covered_days THEN 1 ELSE 0 END) AS n_drugs_oversupplied,
           MAX(n_sources) AS max_sources_same_drug,
           SUM(supply_days) AS supply_days_365
    FROM supply_drug
    GROUP BY psn_no
),
refill_gap AS (
    SELECT psn_no, setl_date,
           DATE_DIFF('day', LAG(setl_date) OVER (PARTITION BY psn_no ORDER BY setl_date), setl_date) AS gap
    FROM (SELECT DISTINCT psn_no, setl_date FROM stg_visit WHERE is_chronic = 1 AND age_days < 365) c
),
refill AS (
    SELECT psn_no, COUNT(gap) AS n_refill_gaps, AVG(CAST(gap AS DOUBLE)) AS refill_gap_mean,
           STDDEV_SAMP(CAST(gap AS DOUBLE) ORDER BY setl_date) AS refill_gap_std
    FROM refill_gap
    GROUP BY psn_no
)
SELECT p.psn_no,
       -- from the middle (2 July) of the birth year, as in _stage.sql: the warehouse keeps no birth date
       CAST(DATE_DIFF('day', MAKE_DATE(p.birth_year, 7, 2), CAST({{ as_of }} AS DATE)) AS DOUBLE) / 365.25
           AS age_years,
       CASE WHEN p.gend = '2' THEN 1 ELSE 0 END AS is_female,
       CASE WHEN p.die_date IS NOT NULL AND p.die_date <= CAST({{ as_of }} AS DATE) THEN 1 ELSE 0 END AS is_dead,
       CASE WHEN SUBSTR(p.insu_admdvs, 1, 4) <> rg.region_city THEN 1 ELSE 0 END AS is_insured_elsewhere,
       v.n_setl_30, v.n_setl_90, v.n_setl_365, v.amt_30, v.amt_90, v.amt_365, v.fund_amt_365,
       y.n_inpatient_365, y.n_pharmacy_365, y.n_chronic_365, y.ipt_days_365,
       y.n_distinct_fixmedins_365, y.n_distinct_pharmacies_365, y.n_distinct_doctors_365, y.n_active_days_365,
       y.exam_share, y.drug_share, y.consumable_share, y.class_c_share, y.vbp_nonselected_share,
       y.off_hours_share, y.weekend_share, y.round_share,
       y.avg_admdvs_distance, y.max_admdvs_distance, y.n_out_of_region_setl_365, y.n_injury_365,
       y.max_setl_amt_365,
       rf.n_refund_365,
       v.n_setl_after_death, v.amt_after_death,
       os.n_setl_during_own_stay, os.amt_setl_during_own_stay, os.n_pharmacy_during_own_stay,
       s.max_supply_ratio, s.excess_supply_days, s.n_drugs_oversupplied, s.max_sources_same_drug, s.supply_days_365,
       r.n_refill_gaps, r.refill_gap_mean, r.refill_gap_std,
       r.refill_gap_std / NULLIF(r.refill_gap_mean, 0) AS refill_gap_cv
FROM psn_info p
CROSS JOIN stg_region rg
LEFT JOIN vol v ON v.psn_no = p.psn_no
LEFT JOIN y ON y.psn_no = p.psn_no
LEFT JOIN refunds rf ON rf.psn_no = p.psn_no
LEFT JOIN own_stay os ON os.psn_no = p.psn_no
LEFT JOIN supply s ON s.psn_no = p.psn_no
LEFT JOIN refill r ON r.psn_no = p.psn_no
