-- 超标准收费: a line priced above the catalogue's price cap (最高限价, hilist.pric_uplmt_amt; the line's own
-- pric_uplmt_amt when the catalogue has none), by more than $tolerance_yuan.
-- One hit per line; evidence and amount at risk = the line; detail.excess is what was charged above the cap.
SELECT 'line' AS entity_type, l.bkkp_sn AS entity_id, l.setl_id, l.mdtrt_id, l.psn_no, l.fixmedins_code,
       l.bilg_dr_code AS prac_code, [l.bkkp_sn] AS evidence, l.det_item_fee_sumamt AS amount_at_risk,
       l.setl_time AS event_time,
       {'hilist_code': l.hilist_code, 'hilist_name': l.hilist_name, 'pric': l.pric,
        'cap': coalesce(c.pric_uplmt_amt, l.pric_uplmt_amt),
        'excess': CAST(round((l.pric - coalesce(c.pric_uplmt_amt, l.pric_uplmt_amt)) * l.cnt, 2) AS DECIMAL(18, 2))}
       AS detail
FROM claim_line l
LEFT JOIN catalogue c ON c.hilist_code = l.hilist_code
WHERE l.in_scope AND l.cnt > 0
  AND coalesce(c.pric_uplmt_amt, l.pric_uplmt_amt) IS NOT NULL
  AND l.pric > coalesce(c.pric_uplmt_amt, l.pric_uplmt_amt) + $tolerance_yuan
