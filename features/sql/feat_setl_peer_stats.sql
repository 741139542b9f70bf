-- 结算同组统计快照 feat_setl_peer_stats: the peer groups of feat_setl as this build counted them, one row
-- per group (same med_type, institution type and grade, as feat_setl.sql partitions z_amt_peer and
-- pct_amt_peer). The pre-check's online features (features/online.py) compare a new visit's amount with
-- it instead of recomputing the groups per request. Reads feat_setl after it is written; `{{ as_of }}` is
-- the build's cut-off. Group keys are never NULL inside the query (a join on NULL keys would lose a
-- group): '' and -1 stand in, and are NULL again at the end.
WITH g AS (
    SELECT COALESCE(s.med_type, '') AS med_type, COALESCE(i.fixmedins_type, '') AS fixmedins_type,
           CASE WHEN i.fixmedins_code IS NULL THEN -1 ELSE i.hosp_level END AS hosp_level,
           f.setl_id, f.medfee_amt AS amt,
           -- the mean and deviation from the DECIMAL amount: exact sums whatever the order (_stage.sql)
           CAST(s.medfee_sumamt AS DECIMAL(18, 2)) AS amt_decimal, f.fund_amt / NULLIF(f.medfee_amt, 0) AS fund_share,
           f.psn_pay_amt / NULLIF(f.medfee_amt, 0) AS psn_pay_share,
           f.acct_pay_amt / NULLIF(f.medfee_amt, 0) AS acct_pay_share
    FROM feat_setl f
    JOIN setl_d s ON s.setl_id = f.setl_id
    -- the grade as the staging's stg_inst gives it (rules.yaml codes.hosp_level, filled in by features/build.py)
    LEFT JOIN (SELECT fixmedins_code, fixmedins_type, {{ hosp_level_case }} AS hosp_level FROM fixmedins) i
           ON i.fixmedins_code = s.fixmedins_code
),
stats AS (
    SELECT med_type, fixmedins_type, hosp_level, COUNT(*) AS n, CAST(SUM(amt_decimal) AS DOUBLE) / COUNT(*) AS mean_amt,
           VAR_POP(CAST(amt_decimal AS DOUBLE) ORDER BY setl_id) * COUNT(*) AS m2_amt, MEDIAN(amt) AS median_amt,
           MEDIAN(fund_share) AS median_fund_share, MEDIAN(psn_pay_share) AS median_psn_pay_share,
           MEDIAN(acct_pay_share) AS median_acct_pay_share
    FROM g GROUP BY med_type, fixmedins_type, hosp_level
),
v AS (
    -- the distinct amounts as PERCENT_RANK orders them (rounded to 6 digits), with how many settlements
    SELECT med_type, fixmedins_type, hosp_level, ROUND(amt, 6) AS value, COUNT(*) AS n
    FROM g GROUP BY med_type, fixmedins_type, hosp_level, ROUND(amt, 6)
),
d AS (
    SELECT med_type, fixmedins_type, hosp_level,
           list(value ORDER BY value) AS amt_values, list(n ORDER BY value) AS amt_counts
    FROM v GROUP BY med_type, fixmedins_type, hosp_level
)
SELECT NULLIF(s.med_type, '') AS med_type, NULLIF(s.fixmedins_type, '') AS fixmedins_type,
       NULLIF(s.hosp_level, -1) AS hosp_level, s.n, s.mean_amt, s.m2_amt, s.median_amt,
       s.median_fund_share, s.median_psn_pay_share, s.median_acct_pay_share, d.amt_values, d.amt_counts,
       {{ as_of }} AS as_of
FROM stats s
JOIN d ON d.med_type = s.med_type AND d.fixmedins_type = s.fixmedins_type AND d.hosp_level = s.hosp_level
