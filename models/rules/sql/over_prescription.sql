-- 超量开药/重复开药: a long prescription (at least $min_supply_days days supply of one drug in one
-- settlement, prd_days) written while an earlier long prescription of the same drug from ANOTHER
-- institution still covers at least $min_overlap_days of its days. Drugs are compared by generic name
-- (hilist.generic_name), so a 集采 product and its non-selected twin are the same drug. Pharmacy purchases
-- ($purchase_med_types) are not prescriptions and are left out.
-- One hit per person and prescription; evidence and amount at risk = the lines of the overlapping drug.
WITH rx AS (
    SELECT l.psn_no, coalesce(c.generic_name, l.hilist_code) AS drug, l.setl_id, l.fixmedins_code,
           min(l.fee_date) AS rx_date, sum(l.prd_days) AS supply_days, list(l.bkkp_sn ORDER BY l.bkkp_sn) AS lines,
           sum(l.det_item_fee_sumamt) AS amount, any_value(l.in_scope) AS in_scope, any_value(l.setl_time) AS setl_time,
           any_value(l.mdtrt_id) AS mdtrt_id, min(l.bilg_dr_code) AS prac_code, min(l.hilist_name) AS hilist_name
    FROM claim_line l
    LEFT JOIN catalogue c ON c.hilist_code = l.hilist_code
    WHERE l.cnt > 0 AND l.prd_days > 0 AND l.list_type IN ('101', '102')
      AND NOT list_contains($purchase_med_types, l.med_type)
    GROUP BY l.psn_no, drug, l.setl_id, l.fixmedins_code
    HAVING sum(l.prd_days) >= $min_supply_days
), overlap AS (
    SELECT a.*, b.setl_id AS earlier_setl_id, b.fixmedins_code AS earlier_fixmedins_code, b.rx_date AS earlier_date,
           date_diff('day', a.rx_date, least(b.rx_date + CAST(b.supply_days AS INTEGER),
                                             a.rx_date + CAST(a.supply_days AS INTEGER))) AS overlap_days
    FROM rx a
    JOIN rx b ON b.psn_no = a.psn_no AND b.drug = a.drug AND b.fixmedins_code <> a.fixmedins_code
             AND b.setl_id <> a.setl_id
             AND (b.rx_date < a.rx_date OR (b.rx_date = a.rx_date AND b.setl_id < a.setl_id))
             AND b.rx_date + CAST(b.supply_days AS INTEGER) > a.rx_date
    WHERE a.in_scope
), worst AS (
    SELECT *, row_number() OVER (PARTITION BY setl_id, drug ORDER BY overlap_days DESC, earlier_setl_id) AS k
    FROM overlap WHERE overlap_days >= $min_overlap_days
)
SELECT 'psn' AS entity_type, psn_no AS entity_id, setl_id, mdtrt_id, psn_no, fixmedins_code, prac_code,
       lines AS evidence, amount AS amount_at_risk, setl_time AS event_time,
       {'drug': drug, 'hilist_name': hilist_name, 'rx_date': CAST(rx_date AS VARCHAR), 'supply_days': supply_days,
        'earlier_setl_id': earlier_setl_id, 'earlier_fixmedins_code': earlier_fixmedins_code,
        'earlier_date': CAST(earlier_date AS VARCHAR), 'overlap_days': overlap_days} AS detail
FROM worst
WHERE k = 1
