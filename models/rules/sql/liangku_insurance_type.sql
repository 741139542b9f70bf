-- 限保险类型 (两库 batch 3): a drug of the 工伤 (work-injury) or 生育 (maternity) catalogue only, billed to
-- the medical-insurance fund. A 工伤-only drug is allowed only in a settlement of the work-injury insurance
-- (insutype in $work_injury_insutypes); a 生育-only drug only in a maternity settlement (med_type in
-- $maternity_med_types or insutype in $maternity_insutypes).
-- One hit per fee line; amount at risk = the line's amount.
SELECT 'line' AS entity_type, l.bkkp_sn AS entity_id, l.setl_id, l.mdtrt_id, l.psn_no, l.fixmedins_code,
       l.bilg_dr_code AS prac_code, [l.bkkp_sn] AS evidence, l.det_item_fee_sumamt AS amount_at_risk,
       l.setl_time AS event_time,
       {'hilist_code': l.hilist_code, 'hilist_name': l.hilist_name, 'insurance_only': k.insurance_only,
        'insutype': l.insutype, 'med_type': l.med_type, 'point_id': k.point_id} AS detail
FROM claim_line l
JOIN (SELECT hilist_code, min(insurance_only) AS insurance_only, min(point_id) AS point_id
      FROM rule_pack WHERE rule_kind = 'insurance_type'
      GROUP BY hilist_code) k ON k.hilist_code = l.hilist_code
WHERE l.in_scope AND l.cnt > 0
  AND NOT ((k.insurance_only = '生育' AND (list_contains($maternity_med_types, l.med_type)
                                           OR list_contains($maternity_insutypes, l.insutype)))
           OR (k.insurance_only = '工伤' AND list_contains($work_injury_insutypes, l.insutype)))
