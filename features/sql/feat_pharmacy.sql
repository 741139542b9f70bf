-- 定点药店级特征 feat_pharmacy: one row per retail pharmacy (fixmedins_type = 'pharmacy'), keyed
-- fixmedins_code. 空刷/虚假购药 signals: round amounts, evening swipes, the same basket again and again,
-- bursts of swipes within minutes, billed quantities beyond stock in-flow (进销存), buyers who were
-- admitted elsewhere or dead at the time. Peer group: all pharmacies.
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
baskets AS (
    SELECT fixmedins_code, basket_key, COUNT(*) AS n
    FROM stg_visit
    WHERE age_days < 365
    GROUP BY fixmedins_code, basket_key
),
basket AS (
    SELECT fixmedins_code,
           SUM(CASE WHEN n >= 3 THEN n ELSE 0 END) AS n_setl_repeated_basket,
           MAX(n) AS max_same_basket
    FROM baskets
    GROUP BY fixmedins_code
),
y AS (
    SELECT v.fixmedins_code,
           COUNT(DISTINCT v.psn_no) AS n_persons_365,
           COUNT(DISTINCT v.setl_date) AS n_active_days_365,
           SUM(v.amt) / COUNT(*) AS amt_per_setl,
           SUM(v.n_lines) / COUNT(*) AS lines_per_setl,
           AVG(CAST(v.is_round AS DOUBLE)) AS round_share,
           AVG(CAST(v.is_evening AS DOUBLE)) AS evening_share,
           AVG(CAST(v.is_off_hours AS DOUBLE)) AS off_hours_share,
           AVG(CAST(v.is_weekend AS DOUBLE)) AS weekend_share,
           AVG(CAST(v.is_round * v.is_evening AS DOUBLE)) AS round_evening_share,
           -- a burst: at least 5 swipes at this pharmacy within 10 minutes either side
           AVG(CAST(CASE WHEN v.n_same_inst_10min >= 5 THEN 1 ELSE 0 END AS DOUBLE)) AS burst_share,
           MAX(v.n_same_inst_10min) AS max_setl_within_10min,
           SUM(v.amt_drug) / NULLIF(SUM(v.line_amt), 0) AS drug_share,
           SUM(v.amt_class_c) / NULLIF(SUM(v.line_amt), 0) AS class_c_share,
           SUM(v.amt_vbp_nonselected) / NULLIF(SUM(v.amt_vbp_group), 0) AS vbp_nonselected_share,
           AVG(CAST(CASE WHEN v.admdvs_distance >= 2 THEN 1 ELSE 0 END AS DOUBLE)) AS out_of_region_share,
           SUM(v.is_after_death) AS n_setl_after_death_365,
           AVG(CAST(COALESCE(d.is_during_stay, 0) AS DOUBLE)) AS during_inpatient_stay_share,
           SUM(v.drug_supply_days) / COUNT(v.drug_supply_days) AS avg_supply_days
    FROM stg_visit v
    LEFT JOIN (SELECT other_setl_id, MAX(other_is_elsewhere) AS is_during_stay FROM stg_during_stay
               GROUP BY other_setl_id) d ON d.other_setl_id = v.setl_id
    WHERE v.age_days < 365
    GROUP BY v.fixmedins_code
),
per_person AS (
    SELECT fixmedins_code, MAX(n) AS max_setl_per_person, MAX(a) AS max_amt_per_person
    FROM (SELECT fixmedins_code, psn_no, COUNT(*) AS n, SUM(amt) AS a FROM stg_visit WHERE age_days < 365
          GROUP BY fixmedins_code, psn_no) p
    GROUP BY fixmedins_code
),
busiest AS (
    SELECT fixmedins_code, MAX(n) AS max_setl_per_hour
    FROM (SELECT fixmedins_code, setl_date, setl_hour, COUNT(*) AS n FROM stg_visit WHERE age_days < 365
          GROUP BY fixmedins_code, setl_date, setl_hour) h
    GROUP BY fixmedins_code
),
refunds AS (
    SELECT fixmedins_code, SUM(is_refund) AS n_refund_365
    FROM stg_refunded
    WHERE setl_time <= {{ as_of }} AND DATE_DIFF('day', CAST(setl_time AS DATE), CAST({{ as_of }} AS DATE)) < 365
    GROUP BY fixmedins_code
),
base AS (
    SELECT i.fixmedins_code,
           v.n_setl_30, v.n_setl_90, v.n_setl_365, v.amt_30, v.amt_90, v.amt_365, v.fund_amt_365,
           y.n_persons_365, y.n_active_days_365,
           v.n_setl_365 / NULLIF(CAST(y.n_persons_365 AS DOUBLE), 0) AS setl_per_person,
           COALESCE(y.amt_per_setl, 0) AS amt_per_setl, y.lines_per_setl,
           COALESCE(y.round_share, 0) AS round_share, COALESCE(y.evening_share, 0) AS evening_share,
           y.off_hours_share, y.weekend_share, y.round_evening_share,
           COALESCE(y.burst_share, 0) AS burst_share, y.max_setl_within_10min, h.max_setl_per_hour,
           COALESCE(bk.n_setl_repeated_basket / NULLIF(CAST(v.n_setl_365 AS DOUBLE), 0), 0) AS same_basket_share,
           bk.max_same_basket / NULLIF(CAST(v.n_setl_365 AS DOUBLE), 0) AS top_basket_share,
           y.drug_share, y.class_c_share, y.vbp_nonselected_share, y.out_of_region_share,
           y.n_setl_after_death_365, y.during_inpatient_stay_share, y.avg_supply_days,
           pp.max_setl_per_person, pp.max_amt_per_person,
           rf.n_refund_365,
           CASE WHEN g.fixmedins_code IS NULL THEN 0 ELSE 1 END AS has_stock_records,
           g.stock_gap_qty, g.stock_gap_amt, g.n_stock_gap_item_months,
           COALESCE(g.stock_gap_qty / NULLIF(g.billed_drug_qty, 0), 0) AS stock_gap_ratio,
           m.mom_max_growth_key_items, m.mom_n_doublings_key_items,
           m.qty_last_month / NULLIF(m.qty_prev_month, 0) - 1 AS mom_last_growth_key_items
    FROM stg_inst i
    LEFT JOIN vol v ON v.fixmedins_code = i.fixmedins_code
    LEFT JOIN y ON y.fixmedins_code = i.fixmedins_code
    LEFT JOIN basket bk ON bk.fixmedins_code = i.fixmedins_code
    LEFT JOIN per_person pp ON pp.fixmedins_code = i.fixmedins_code
    LEFT JOIN busiest h ON h.fixmedins_code = i.fixmedins_code
    LEFT JOIN refunds rf ON rf.fixmedins_code = i.fixmedins_code
    LEFT JOIN stg_stock_gap g ON g.fixmedins_code = i.fixmedins_code
    LEFT JOIN stg_mom m ON m.fixmedins_code = i.fixmedins_code
    WHERE i.fixmedins_type = 'pharmacy'
)
SELECT base.*,
       COUNT(*) OVER () AS peer_group_size,
       (amt_per_setl - AVG(amt_per_setl) OVER w) / NULLIF(STDDEV_POP(amt_per_setl) OVER w, 0) AS z_amt_per_setl,
       PERCENT_RANK() OVER (ORDER BY ROUND(amt_per_setl, 9)) AS pct_amt_per_setl,
       (round_share - AVG(round_share) OVER w) / NULLIF(STDDEV_POP(round_share) OVER w, 0) AS z_round_share,
       PERCENT_RANK() OVER (ORDER BY ROUND(round_share, 9)) AS pct_round_share,
       (evening_share - AVG(evening_share) OVER w) / NULLIF(STDDEV_POP(evening_share) OVER w, 0) AS z_evening_share,
       PERCENT_RANK() OVER (ORDER BY ROUND(evening_share, 9)) AS pct_evening_share,
       (burst_share - AVG(burst_share) OVER w) / NULLIF(STDDEV_POP(burst_share) OVER w, 0) AS z_burst_share,
       PERCENT_RANK() OVER (ORDER BY ROUND(burst_share, 9)) AS pct_burst_share,
       (same_basket_share - AVG(same_basket_share) OVER w) / NULLIF(STDDEV_POP(same_basket_share) OVER w, 0)
           AS z_same_basket_share,
       PERCENT_RANK() OVER (ORDER BY ROUND(same_basket_share, 9)) AS pct_same_basket_share,
       (stock_gap_ratio - AVG(stock_gap_ratio) OVER w) / NULLIF(STDDEV_POP(stock_gap_ratio) OVER w, 0)
           AS z_stock_gap_ratio,
       PERCENT_RANK() OVER (ORDER BY ROUND(stock_gap_ratio, 9)) AS pct_stock_gap_ratio
FROM base
-- ordered by the key over all pharmacies: the mean and deviation add in that order, the same run after run
WINDOW w AS (ORDER BY fixmedins_code ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
