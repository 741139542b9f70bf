-- 限性别 (两库 batch 1): a drug or service item restricted to one sex, billed for a person of the other sex.
-- Knowledge points: rule_pack rows of rule_kind 'gender' (gend = the sex the code is limited TO).
-- Sex from the person register (psn_info); a line whose person has no recorded sex is not judged.
-- One hit per fee line; amount at risk = the line's amount.
SELECT 'line' AS entity_type, l.bkkp_sn AS entity_id, l.setl_id, l.mdtrt_id, l.psn_no, l.fixmedins_code,
       l.bilg_dr_code AS prac_code, [l.bkkp_sn] AS evidence, l.det_item_fee_sumamt AS amount_at_risk,
       l.setl_time AS event_time,
       {'hilist_code': l.hilist_code, 'hilist_name': l.hilist_name,
        'limit_gend': k.gend, 'limit_gend_zh': CASE k.gend WHEN '1' THEN '男' ELSE '女' END,
        'psn_gend': l.psn_gend, 'psn_gend_zh': CASE l.psn_gend WHEN '1' THEN '男' WHEN '2' THEN '女' ELSE l.psn_gend END,
        'point_id': k.point_id} AS detail
FROM claim_line l
JOIN (SELECT hilist_code, min(gend) AS gend, min(point_id) AS point_id
      FROM rule_pack WHERE rule_kind = 'gender'
      GROUP BY hilist_code HAVING count(DISTINCT gend) = 1) k ON k.hilist_code = l.hilist_code
WHERE l.in_scope AND l.cnt > 0 AND l.psn_gend IN ('1', '2') AND l.psn_gend <> k.gend
