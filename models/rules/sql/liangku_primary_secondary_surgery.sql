-- 主次手术未折价 (两库 batch 2): two or more operations of one surgery group (e.g. 胃肠手术组) through the same
-- incision in one visit, the second and later ones not discounted (第二及以后的手术未按规定折价计收).
-- The operations of a group in one visit are taken in the order billed (ties: dearer first); an operation
-- billed within $session_hours hours of the group's previous operation belongs to the same session (the
-- same incision) and is a second or later operation. It is "not discounted" when its price is above
-- $discounted_max_ratio of its price cap (catalogue hilist.pric_uplmt_amt, else the line's own).
-- An operation that batch 7 says the previous one already includes (重复收费: 主项 includes 从项) is a
-- duplicate charge, wholly not payable, and is left to liangku_duplicate_charge.
-- One hit per undiscounted operation line; evidence and amount at risk = that line.
WITH g AS (
    SELECT DISTINCT hilist_code, surgery_group, point_id FROM rule_pack WHERE rule_kind = 'primary_secondary_surgery'
), ops AS (
    SELECT l.*, g.surgery_group, g.point_id, coalesce(c.pric_uplmt_amt, l.pric_uplmt_amt) AS cap
    FROM claim_line l
    JOIN g ON g.hilist_code = l.hilist_code
    LEFT JOIN catalogue c ON c.hilist_code = l.hilist_code
    WHERE l.cnt > 0
), ordered AS (
    SELECT *,
           lag(bkkp_sn) OVER w AS main_line,
           lag(hilist_name) OVER w AS main_name,
           lag(hilist_code) OVER w AS main_code,
           lag(fee_ocur_time) OVER w AS main_time
    FROM ops
    WINDOW w AS (PARTITION BY mdtrt_id, surgery_group ORDER BY fee_ocur_time, pric DESC, bkkp_sn)
), undiscounted AS (
    SELECT o.*, row_number() OVER (PARTITION BY o.bkkp_sn ORDER BY o.surgery_group) AS k
    FROM ordered o
    WHERE o.in_scope AND o.main_line IS NOT NULL
      AND o.fee_ocur_time - o.main_time <= to_hours(CAST($session_hours AS BIGINT))
      AND o.cap IS NOT NULL AND o.pric > o.cap * $discounted_max_ratio + 0.005
      AND NOT EXISTS (SELECT 1 FROM rule_pack d
                      WHERE d.rule_kind = 'duplicate_charge' AND d.hilist_code = o.main_code
                        AND d.related_code = o.hilist_code)
)
SELECT 'line' AS entity_type, bkkp_sn AS entity_id, setl_id, mdtrt_id, psn_no, fixmedins_code,
       bilg_dr_code AS prac_code, [bkkp_sn] AS evidence, det_item_fee_sumamt AS amount_at_risk,
       setl_time AS event_time,
       {'hilist_code': hilist_code, 'hilist_name': hilist_name, 'surgery_group': surgery_group,
        'main_line': main_line, 'main_name': main_name, 'pric': pric, 'cap': cap,
        'price_ratio': round(pric / cap, 2), 'point_id': point_id} AS detail
FROM undiscounted
WHERE k = 1
