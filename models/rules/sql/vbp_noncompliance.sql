-- 集采中选产品未执行: an institution whose share of non-selected products (vbp_flag '0'), by quantity, among
-- the drugs of 集采 groups that have a selected product (vbp_flag '1'), is above $max_nonselected_share over
-- the settlements in scope, with at least $min_group_quantity units of such drugs. Institution types in
-- $institution_types only (集采 use targets bind medical institutions).
-- One hit per institution and run window; evidence and amount at risk = its non-selected lines;
-- detail.excess_over_selected = what they cost above the selected product's price.
WITH grp AS (
    SELECT vbp_group, max(hilist_code) FILTER (WHERE vbp_flag = '1') AS selected_code
    FROM catalogue WHERE vbp_group IS NOT NULL
    GROUP BY vbp_group HAVING count(*) FILTER (WHERE vbp_flag = '1') > 0
), selected_price AS (  -- what the selected product was billed at, region-wide (median unit price)
    SELECT g.vbp_group, median(l.pric) AS pric
    FROM grp g JOIN claim_line l ON l.hilist_code = g.selected_code
    WHERE l.cnt > 0
    GROUP BY g.vbp_group
), used AS (
    SELECT l.*, c.vbp_group, c.vbp_flag
    FROM claim_line l
    JOIN catalogue c ON c.hilist_code = l.hilist_code
    JOIN grp g ON g.vbp_group = c.vbp_group
    WHERE l.in_scope AND l.cnt > 0 AND list_contains($institution_types, l.fixmedins_type)
), per_institution AS (
    SELECT u.fixmedins_code, sum(u.cnt) AS quantity,
           sum(u.cnt) FILTER (WHERE u.vbp_flag = '0') AS nonselected_quantity,
           list(u.bkkp_sn ORDER BY u.bkkp_sn) FILTER (WHERE u.vbp_flag = '0') AS lines,
           sum(u.det_item_fee_sumamt) FILTER (WHERE u.vbp_flag = '0') AS amount,
           sum((u.pric - coalesce(sp.pric, u.pric)) * u.cnt) FILTER (WHERE u.vbp_flag = '0') AS excess,
           min(u.setl_time) AS first_time, max(u.setl_time) AS last_time
    FROM used u LEFT JOIN selected_price sp ON sp.vbp_group = u.vbp_group
    GROUP BY u.fixmedins_code
)
SELECT 'fixmedins' AS entity_type, fixmedins_code AS entity_id, NULL AS setl_id, NULL AS mdtrt_id, NULL AS psn_no,
       fixmedins_code, NULL AS prac_code, lines AS evidence, amount AS amount_at_risk, first_time AS event_time,
       {'nonselected_share': round(nonselected_quantity / quantity, 3),
        'nonselected_pct': CAST(round(100 * nonselected_quantity / quantity, 1) AS VARCHAR) || '%',
        'threshold_pct': CAST(round(100 * $max_nonselected_share, 1) AS VARCHAR) || '%',
        'quantity': quantity, 'nonselected_quantity': nonselected_quantity,
        'excess_over_selected': CAST(round(excess, 2) AS DECIMAL(18, 2)),
        'window_from': CAST(CAST(first_time AS DATE) AS VARCHAR),
        'window_to': CAST(CAST(last_time AS DATE) AS VARCHAR)} AS detail
FROM per_institution
WHERE quantity >= $min_group_quantity AND nonselected_quantity / quantity > $max_nonselected_share
