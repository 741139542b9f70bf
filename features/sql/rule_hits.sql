-- 规则命中特征 (rule-hit features): hits of the rule engine (table rule_hits, written by
-- `yibao rules run`) counted and summed per entity and per typology id (architecture.md).
-- `{{ key }}` is the entity column (setl_id, psn_no, prac_code or fixmedins_code); `{{ per_typology }}`
-- expands to two columns per typology id: rh_n_<id> (hits) and rh_amt_<id> (amount at risk, 元).
-- Every hit in the table counts (the rule engine decides the period it screened). When the warehouse
-- has no rule_hits table yet, the runner supplies an empty one and these columns are all zero.
SELECT CAST({{ key }} AS VARCHAR) AS entity_key,
       COUNT(*) AS rh_n_hits,
       CAST(SUM(amount_at_risk) AS DOUBLE) AS rh_amt_hits,  -- DECIMAL: exact whatever the hits' order
       COUNT(DISTINCT rule_id) AS rh_n_rules,
       COUNT(DISTINCT typology_id) AS rh_n_typologies,
       {{ per_typology }}
FROM rule_hits
WHERE {{ key }} IS NOT NULL
GROUP BY CAST({{ key }} AS VARCHAR)
