-- 特征公共中间表 (staging tables every feature table reads).
--
-- Each block below starts with `-- name: <table>` and is one SELECT. The runner (features/build.py)
-- materialises the blocks in order: a DuckDB TEMP TABLE, or a cached Spark temp view (the text is
-- transpiled from DuckDB SQL to Spark SQL with sqlglot). `{{ as_of }}` is the cut-off moment
-- (TIMESTAMP literal): nothing after it is read, and the 30/90/365-day windows end there.
--
-- Refunds (退费): a refund settlement (refd_setl_flag = '1') and the settlement it cancels
-- (init_setl_id) are both left out of every feature: a refunded claim is not money paid. The number of
-- refunds an entity had is kept as a feature of its own (n_refund_365).
--
-- Exact whatever the row order (the build runs on every core, and Spark adds in an order of its own):
-- money stays DECIMAL(18, 2) and quantities and days DECIMAL(18, 4), so that their sums are exact integers
-- in any order (a DOUBLE sum's last bits depend on the order the threads add in).
-- - A sum, mean or deviation of DOUBLE values that are not whole numbers names the order it adds in:
--   `SUM(x ORDER BY k)`, or for a window `ORDER BY key ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED
--   FOLLOWING` with a unique key; DuckDB then adds in that order (Spark drops it: features/spark_sql.py).
-- - A mean of DECIMAL values is `SUM(x) / COUNT(x)` or taken over `CAST(x AS DOUBLE)`: Spark's AVG of a
--   DECIMAL is a DECIMAL rounded to 4 more places, DuckDB's a DOUBLE.
-- - A settlement's line totals are narrowed back to 18 digits (half the width to carry: stg_setl_lines
--   7.6 s against 10.2 s on `city`).
-- - A quantity of 10^14 or more, or a settlement's line total of 10^16 yuan or more, which no real claim
--   has and the contract's checks do not bound, counts as missing rather than stopping the build (TRY_CAST).

-- name: stg_refunded
-- Settlement ids that do not count: the refunds and the originals they cancel.
SELECT setl_id, MAX(is_refund) AS is_refund, MAX(fixmedins_code) AS fixmedins_code,
       MAX(psn_no) AS psn_no, MAX(setl_time) AS setl_time
FROM (
    SELECT setl_id, 1 AS is_refund, fixmedins_code, psn_no, setl_time
    FROM setl_d WHERE refd_setl_flag = '1'
    UNION ALL
    SELECT init_setl_id AS setl_id, 0 AS is_refund, fixmedins_code, psn_no, setl_time
    FROM setl_d WHERE refd_setl_flag = '1' AND init_setl_id IS NOT NULL
) r
GROUP BY setl_id

-- name: stg_inst
-- Institutions with their grade: 三级 3, 二级 2, 一级 1, 无等级 / clinics / pharmacies 0 (hosp_lv codes; the
-- map is rules.yaml's codes.hosp_level, filled in by features/build.py, as are the inpatient and emergency
-- med_types below: the rules and the features class visits alike).
SELECT fixmedins_code, fixmedins_type, admdvs, beds,
       {{ hosp_level_case }} AS hosp_level
FROM fixmedins

-- name: stg_region
-- The pooling region (统筹区) itself: the city prefix (4 digits of the 医保区划) most institutions carry.
SELECT city AS region_city
FROM (
    SELECT city, ROW_NUMBER() OVER (ORDER BY n DESC, city) AS rn
    FROM (SELECT SUBSTR(admdvs, 1, 4) AS city, COUNT(*) AS n FROM fixmedins GROUP BY SUBSTR(admdvs, 1, 4)) c
) r
WHERE rn = 1

-- name: stg_setl
-- Settlements that count (not refunds, not refunded, not after as_of) with their visit (就诊) and flags.
SELECT s.setl_id, s.mdtrt_id, s.psn_no, s.fixmedins_code, s.med_type, s.setl_time,
       CAST(s.setl_time AS DATE) AS setl_date,
       DATE_DIFF('day', CAST(s.setl_time AS DATE), CAST({{ as_of }} AS DATE)) AS age_days,
       YEAR(s.setl_time) * 12 + MONTH(s.setl_time) AS month_idx,
       CAST(s.medfee_sumamt AS DECIMAL(18, 2)) AS amt,
       CAST(s.fund_pay_sumamt AS DECIMAL(18, 2)) AS fund_amt,
       CAST(s.psn_pay AS DECIMAL(18, 2)) AS psn_pay_amt,
       CAST(s.acct_pay AS DECIMAL(18, 2)) AS acct_pay_amt,
       HOUR(s.setl_time) AS setl_hour,
       -- 0 = Monday ... 6 = Sunday (1970-01-05 was a Monday); portable where day-of-week functions are not
       DATE_DIFF('day', DATE '1970-01-05', CAST(s.setl_time AS DATE)) % 7 AS weekday,
       CASE WHEN DATE_DIFF('day', DATE '1970-01-05', CAST(s.setl_time AS DATE)) % 7 >= 5 THEN 1 ELSE 0 END
           AS is_weekend,
       CASE WHEN HOUR(s.setl_time) < 7 OR HOUR(s.setl_time) >= 19 THEN 1 ELSE 0 END AS is_off_hours,
       CASE WHEN HOUR(s.setl_time) >= 19 THEN 1 ELSE 0 END AS is_evening,
       -- 整数金额: a whole multiple of 10 yuan of at least 50 yuan (空刷 pads baskets to round sums)
       CASE WHEN s.medfee_sumamt >= 50 AND CAST(s.medfee_sumamt * 100 AS BIGINT) % 1000 = 0 THEN 1 ELSE 0 END
           AS is_round,
       CASE WHEN s.med_type IN ({{ inpatient_med_types }}) THEN 1 ELSE 0 END AS is_inpatient,
       CASE WHEN s.med_type = '41' OR i.fixmedins_type = 'pharmacy' THEN 1 ELSE 0 END AS is_pharmacy,
       CASE WHEN s.med_type LIKE '14%' THEN 1 ELSE 0 END AS is_chronic,
       CASE WHEN s.med_type IN ({{ emergency_med_types }}) THEN 1 ELSE 0 END AS is_emergency,
       -- 参保地与就医地的距离: 0 same district, 1 same city, 2 same province, 3 another province
       CASE WHEN s.insu_admdvs = i.admdvs THEN 0
            WHEN SUBSTR(s.insu_admdvs, 1, 4) = SUBSTR(i.admdvs, 1, 4) THEN 1
            WHEN SUBSTR(s.insu_admdvs, 1, 2) = SUBSTR(i.admdvs, 1, 2) THEN 2
            ELSE 3 END AS admdvs_distance,
       i.fixmedins_type, i.hosp_level,
       m.begntime, m.endtime,
       CAST(m.begntime AS DATE) AS begin_date,
       CAST(m.endtime AS DATE) AS end_date,
       m.ipt_days, m.chfpdr_code, m.adm_dept_codg,
       DATE_DIFF('day', CAST(m.begntime AS DATE), CAST(m.endtime AS DATE)) AS stay_days,
       -- 外伤 (S/T main diagnosis): candidates for third-party liability
       CASE WHEN SUBSTR(COALESCE(m.dscg_maindiag_code, s.dise_no, ''), 1, 1) IN ('S', 'T') THEN 1 ELSE 0 END
           AS is_injury,
       -- the warehouse keeps the birth year only (the date is in the identity vault): age from the year's
       -- middle, 2 July, off by half a year at most (features.online and feat_psn.sql do the same)
       CAST(DATE_DIFF('day', MAKE_DATE(p.birth_year, 7, 2), CAST(s.setl_time AS DATE)) AS DOUBLE) / 365.25
           AS age_years,
       CASE WHEN p.die_date IS NOT NULL AND CAST(s.setl_time AS DATE) > p.die_date THEN 1 ELSE 0 END
           AS is_after_death
FROM setl_d s
LEFT JOIN stg_refunded r ON r.setl_id = s.setl_id
LEFT JOIN stg_inst i ON i.fixmedins_code = s.fixmedins_code
LEFT JOIN mdtrt_d m ON m.mdtrt_id = s.mdtrt_id
LEFT JOIN psn_info p ON p.psn_no = s.psn_no
WHERE r.setl_id IS NULL
  AND COALESCE(s.refd_setl_flag, '0') <> '1'
  AND s.setl_time <= {{ as_of }}

-- name: stg_line
-- Fee lines (费用明细) of the settlements that count, with a charge category and catalogue attributes.
SELECT l.setl_id, l.psn_no, l.fixmedins_code, l.hilist_code,
       CAST(l.fee_ocur_time AS DATE) AS fee_date,
       YEAR(l.fee_ocur_time) * 12 + MONTH(l.fee_ocur_time) AS month_idx,
       s.age_days,
       TRY_CAST(l.cnt AS DECIMAL(18, 4)) AS cnt,
       CAST(l.det_item_fee_sumamt AS DECIMAL(18, 2)) AS amt,
       CASE WHEN l.list_type IN ('101', '102', '106') OR l.med_chrgitm_type IN ('09', '10', '11') THEN 'drug'
            WHEN l.list_type = '301' OR l.med_chrgitm_type IN ('08', '0801', '1402', '1403') THEN 'consumable'
            WHEN l.med_chrgitm_type IN ('03', '1408', '1409', '1410', '145301') THEN 'exam'
            WHEN l.med_chrgitm_type = '04' THEN 'lab'
            WHEN l.med_chrgitm_type = '01' THEN 'bed'
            WHEN l.med_chrgitm_type = '07' THEN 'nursing'
            WHEN l.med_chrgitm_type IN ('06', '1413') THEN 'surgery'
            WHEN l.med_chrgitm_type = '05' THEN 'treatment'
            ELSE 'other' END AS cat,
       COALESCE(l.chrgitm_lv, h.chrgitm_lv) AS chrgitm_lv,
       CASE WHEN l.pric > COALESCE(l.pric_uplmt_amt, h.pric_uplmt_amt) + 0.005 THEN 1 ELSE 0 END AS is_over_cap,
       CASE WHEN l.pric > COALESCE(l.pric_uplmt_amt, h.pric_uplmt_amt) + 0.005
            THEN (l.pric - COALESCE(l.pric_uplmt_amt, h.pric_uplmt_amt)) * TRY_CAST(l.cnt AS DECIMAL(18, 4))
            ELSE 0 END
           AS over_cap_amt,
       h.vbp_group,
       CASE WHEN h.vbp_group IS NOT NULL AND COALESCE(h.vbp_flag, '0') <> '1' THEN 1 ELSE 0 END
           AS is_vbp_nonselected,
       -- the same medicine for days-supply purposes: its 集采 group, else its generic name, else the code
       COALESCE(h.vbp_group, h.generic_name, l.hilist_code) AS drug_key,
       TRY_CAST(l.prd_days AS DECIMAL(18, 4)) AS prd_days,
       CASE WHEN l.list_type = '201' AND l.hilist_name LIKE '%透析%' THEN 1 ELSE 0 END AS is_dialysis,
       CASE WHEN l.bilg_dept_codg LIKE 'A21%' THEN 1 ELSE 0 END AS is_rehab,
       CASE WHEN l.bilg_dept_codg LIKE 'A15%' THEN 1 ELSE 0 END AS is_psychiatry
FROM fee_list_d l
JOIN stg_setl s ON s.setl_id = l.setl_id
LEFT JOIN hilist h ON h.hilist_code = l.hilist_code

-- name: stg_setl_lines
-- One row per settlement: its lines summed by category (one pass over the fee lines).
SELECT setl_id,
       COUNT(*) AS n_lines,
       COUNT(DISTINCT hilist_code) AS n_items,
       TRY_CAST(SUM(amt) AS DECIMAL(18, 2)) AS line_amt,
       TRY_CAST(SUM(CASE WHEN cat = 'exam' THEN amt ELSE 0 END) AS DECIMAL(18, 2)) AS amt_exam,
       TRY_CAST(SUM(CASE WHEN cat = 'lab' THEN amt ELSE 0 END) AS DECIMAL(18, 2)) AS amt_lab,
       TRY_CAST(SUM(CASE WHEN cat = 'drug' THEN amt ELSE 0 END) AS DECIMAL(18, 2)) AS amt_drug,
       TRY_CAST(SUM(CASE WHEN cat = 'consumable' THEN amt ELSE 0 END) AS DECIMAL(18, 2)) AS amt_consumable,
       TRY_CAST(SUM(CASE WHEN cat = 'bed' THEN amt ELSE 0 END) AS DECIMAL(18, 2)) AS amt_bed,
       TRY_CAST(SUM(CASE WHEN cat = 'treatment' THEN amt ELSE 0 END) AS DECIMAL(18, 2)) AS amt_treatment,
       TRY_CAST(SUM(CASE WHEN cat = 'exam' THEN cnt ELSE 0 END) AS DECIMAL(18, 4)) AS n_exam,
       TRY_CAST(SUM(CASE WHEN cat = 'lab' THEN cnt ELSE 0 END) AS DECIMAL(18, 4)) AS n_lab,
       TRY_CAST(SUM(CASE WHEN cat = 'treatment' THEN cnt ELSE 0 END) AS DECIMAL(18, 4)) AS n_treatment,
       TRY_CAST(SUM(CASE WHEN chrgitm_lv = '01' THEN amt ELSE 0 END) AS DECIMAL(18, 2)) AS amt_class_a,
       TRY_CAST(SUM(CASE WHEN chrgitm_lv = '02' THEN amt ELSE 0 END) AS DECIMAL(18, 2)) AS amt_class_b,
       TRY_CAST(SUM(CASE WHEN chrgitm_lv IN ('03', '04') THEN amt ELSE 0 END) AS DECIMAL(18, 2)) AS amt_class_c,
       TRY_CAST(SUM(CASE WHEN vbp_group IS NOT NULL THEN amt ELSE 0 END) AS DECIMAL(18, 2)) AS amt_vbp_group,
       TRY_CAST(SUM(CASE WHEN is_vbp_nonselected = 1 THEN amt ELSE 0 END) AS DECIMAL(18, 2)) AS amt_vbp_nonselected,
       TRY_CAST(SUM(CASE WHEN vbp_group IS NOT NULL THEN cnt ELSE 0 END) AS DECIMAL(18, 4)) AS qty_vbp_group,
       TRY_CAST(SUM(CASE WHEN is_vbp_nonselected = 1 THEN cnt ELSE 0 END) AS DECIMAL(18, 4)) AS qty_vbp_nonselected,
       SUM(is_over_cap) AS n_over_cap,
       TRY_CAST(SUM(over_cap_amt) AS DECIMAL(18, 6)) AS over_cap_amt,
       TRY_CAST(SUM(CASE WHEN is_dialysis = 1 THEN cnt ELSE 0 END) AS DECIMAL(18, 4)) AS n_dialysis,
       TRY_CAST(SUM(CASE WHEN is_rehab = 1 THEN cnt ELSE 0 END) AS DECIMAL(18, 4)) AS n_rehab,
       TRY_CAST(SUM(CASE WHEN is_psychiatry = 1 THEN cnt ELSE 0 END) AS DECIMAL(18, 4)) AS n_psychiatry,
       -- days with some care other than bed and nursing (挂床: a stay with days of nothing but a bed)
       COUNT(DISTINCT CASE WHEN cat NOT IN ('bed', 'nursing') THEN fee_date END) AS n_care_days,
       TRY_CAST(SUM(CASE WHEN cat = 'drug' THEN COALESCE(prd_days, 0) ELSE 0 END) AS DECIMAL(18, 4)) AS drug_supply_days,
       -- basket fingerprint (same-basket repetition, 同一处方反复): first and last item code and quantity
       MIN(hilist_code) AS basket_first_item,
       MAX(hilist_code) AS basket_last_item,
       TRY_CAST(SUM(cnt) AS DECIMAL(18, 4)) AS basket_qty
FROM stg_line
GROUP BY setl_id

-- name: stg_visit
-- One row per settlement that counts: settlement, visit and its line totals; the busy-ness of the
-- institution around it (settlements at the same place within 10 minutes either side, 短时集中刷卡).
SELECT s.*,
       COALESCE(l.n_lines, 0) AS n_lines, COALESCE(l.n_items, 0) AS n_items,
       COALESCE(l.line_amt, 0) AS line_amt,
       COALESCE(l.amt_exam, 0) AS amt_exam, COALESCE(l.amt_lab, 0) AS amt_lab,
       COALESCE(l.amt_drug, 0) AS amt_drug, COALESCE(l.amt_consumable, 0) AS amt_consumable,
       COALESCE(l.amt_bed, 0) AS amt_bed, COALESCE(l.amt_treatment, 0) AS amt_treatment,
       COALESCE(l.n_exam, 0) AS n_exam, COALESCE(l.n_lab, 0) AS n_lab,
       COALESCE(l.n_treatment, 0) AS n_treatment,
       COALESCE(l.amt_class_a, 0) AS amt_class_a, COALESCE(l.amt_class_b, 0) AS amt_class_b,
       COALESCE(l.amt_class_c, 0) AS amt_class_c,
       COALESCE(l.amt_vbp_group, 0) AS amt_vbp_group, COALESCE(l.amt_vbp_nonselected, 0) AS amt_vbp_nonselected,
       COALESCE(l.qty_vbp_group, 0) AS qty_vbp_group, COALESCE(l.qty_vbp_nonselected, 0) AS qty_vbp_nonselected,
       COALESCE(l.n_over_cap, 0) AS n_over_cap, COALESCE(l.over_cap_amt, 0) AS over_cap_amt,
       COALESCE(l.n_dialysis, 0) AS n_dialysis, COALESCE(l.n_rehab, 0) AS n_rehab,
       COALESCE(l.n_psychiatry, 0) AS n_psychiatry,
       COALESCE(l.n_care_days, 0) AS n_care_days,
       COALESCE(l.drug_supply_days, 0) AS drug_supply_days,
       COALESCE(l.basket_first_item, '') || '|' || COALESCE(l.basket_last_item, '') || '|'
           || CAST(COALESCE(l.n_lines, 0) AS VARCHAR) || '|' || CAST(CAST(s.amt * 100 AS BIGINT) AS VARCHAR)
           AS basket_key,
       COUNT(*) OVER (PARTITION BY s.fixmedins_code ORDER BY EPOCH(s.setl_time)
                      RANGE BETWEEN 600 PRECEDING AND 600 FOLLOWING) AS n_same_inst_10min
FROM stg_setl s
LEFT JOIN stg_setl_lines l ON l.setl_id = s.setl_id

-- name: stg_readmit
-- Inpatient stays with the days since the same person's previous discharge at the same institution.
SELECT setl_id, DATE_DIFF('day', prev_end_date, begin_date) AS days_since_prev_discharge
FROM (
    SELECT setl_id, begin_date,
           LAG(end_date) OVER (PARTITION BY psn_no, fixmedins_code ORDER BY begntime, setl_id) AS prev_end_date
    FROM stg_visit
    WHERE is_inpatient = 1
) x

-- name: stg_during_stay
-- Settlements of a person made while that person was admitted (住院期间) for another visit: the stay's
-- settlement (stay_setl_id) and the other one (other_setl_id). 挂床 / 盗刷 show up here.
SELECT st.setl_id AS stay_setl_id, o.setl_id AS other_setl_id, o.psn_no,
       o.fixmedins_code AS other_fixmedins_code, o.amt AS other_amt, o.is_pharmacy AS other_is_pharmacy,
       CASE WHEN o.fixmedins_code <> st.fixmedins_code THEN 1 ELSE 0 END AS other_is_elsewhere
FROM stg_visit st
JOIN stg_visit o ON o.psn_no = st.psn_no AND o.mdtrt_id <> st.mdtrt_id
WHERE st.is_inpatient = 1
  AND o.setl_time > st.begntime AND o.setl_time < st.endtime

-- name: stg_item_month
-- Quantity and amount per institution, catalogue item and month, for drugs and consumables in the
-- 365-day window: month-over-month change (异常变化) and the 进销存 stock comparison read this.
SELECT fixmedins_code, hilist_code, month_idx, cat,
       SUM(cnt) AS qty, SUM(amt) AS amt
FROM stg_line
WHERE age_days < 365 AND cat IN ('drug', 'consumable')
GROUP BY fixmedins_code, hilist_code, month_idx, cat

-- name: stg_mom
-- 异常变化: per institution, the month-over-month growth in quantity of its key items (its top 10
-- drugs and consumables by amount in the window). A month counts when the month before had >= 5 units.
-- "last" compares the last complete month before as_of with the one before it.
SELECT k.fixmedins_code,
       MAX(CASE WHEN k.prev_idx = k.month_idx - 1 AND k.prev_qty >= 5 THEN k.qty / k.prev_qty - 1 END)
           AS mom_max_growth_key_items,
       SUM(CASE WHEN k.prev_idx = k.month_idx - 1 AND k.prev_qty >= 5 AND k.qty >= 2 * k.prev_qty
                THEN 1 ELSE 0 END) AS mom_n_doublings_key_items,
       SUM(CASE WHEN k.month_idx = a.last_idx THEN k.qty ELSE 0 END) AS qty_last_month,
       SUM(CASE WHEN k.month_idx = a.last_idx - 1 THEN k.qty ELSE 0 END) AS qty_prev_month
FROM (
    SELECT m.fixmedins_code, m.hilist_code, m.month_idx, m.qty,
           LAG(m.month_idx) OVER (PARTITION BY m.fixmedins_code, m.hilist_code ORDER BY m.month_idx) AS prev_idx,
           LAG(m.qty) OVER (PARTITION BY m.fixmedins_code, m.hilist_code ORDER BY m.month_idx) AS prev_qty
    FROM stg_item_month m
    JOIN (
        SELECT fixmedins_code, hilist_code
        FROM (
            SELECT fixmedins_code, hilist_code,
                   ROW_NUMBER() OVER (PARTITION BY fixmedins_code ORDER BY SUM(amt) DESC, hilist_code) AS rank_amt
            FROM stg_item_month
            GROUP BY fixmedins_code, hilist_code
        ) r
        WHERE rank_amt <= 10
    ) top ON top.fixmedins_code = m.fixmedins_code AND top.hilist_code = m.hilist_code
) k
CROSS JOIN (SELECT YEAR({{ as_of }}) * 12 + MONTH({{ as_of }}) - 1 AS last_idx) a
GROUP BY k.fixmedins_code

-- name: stg_stock_gap
-- 进销存: per institution with stock records, billed drug quantity beyond what stock could supply:
-- sum over (drug, month) of max(0, billed - (opening + in-flow)); a drug billed in a month without a
-- stock record counts in full. Institutions without any stock record are not here (no data, not zero).
SELECT b.fixmedins_code,
       SUM(b.qty) AS billed_drug_qty,
       SUM(GREATEST(b.qty - COALESCE(s.opening_qty + s.in_qty, 0), 0)) AS stock_gap_qty,
       SUM(GREATEST(b.qty - COALESCE(s.opening_qty + s.in_qty, 0), 0) * b.amt / b.qty
           ORDER BY b.hilist_code, b.month_idx) AS stock_gap_amt,
       SUM(CASE WHEN b.qty > COALESCE(s.opening_qty + s.in_qty, 0) THEN 1 ELSE 0 END) AS n_stock_gap_item_months
FROM stg_item_month b
JOIN (SELECT DISTINCT fixmedins_code FROM stock_moves) h ON h.fixmedins_code = b.fixmedins_code
LEFT JOIN (
    -- stock month 'YYYY-MM' as the same month index the fee lines carry (year * 12 + month)
    SELECT fixmedins_code, hilist_code,
           TRY_CAST(opening_qty AS DECIMAL(18, 4)) AS opening_qty, TRY_CAST(in_qty AS DECIMAL(18, 4)) AS in_qty,
           CAST(SUBSTR(month, 1, 4) AS INTEGER) * 12 + CAST(SUBSTR(month, 6, 2) AS INTEGER) AS month_idx
    FROM stock_moves
) s ON s.fixmedins_code = b.fixmedins_code AND s.hilist_code = b.hilist_code AND s.month_idx = b.month_idx
WHERE b.cat = 'drug' AND b.qty > 0
GROUP BY b.fixmedins_code
