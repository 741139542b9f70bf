-- 限就医方式 (两库 batch 4): a drug paid for inpatients only (住院), billed in an outpatient visit or a
-- pharmacy purchase. Points whose note reads 限急诊或住院患者 also allow emergency settlements.
-- Inpatient and emergency med_type codes come from rules.yaml (codes.inpatient_med_types,
-- codes.emergency_med_types) through rule_codes; every other med_type counts as outpatient.
-- One hit per fee line; amount at risk = the line's amount.
SELECT 'line' AS entity_type, l.bkkp_sn AS entity_id, l.setl_id, l.mdtrt_id, l.psn_no, l.fixmedins_code,
       l.bilg_dr_code AS prac_code, [l.bkkp_sn] AS evidence, l.det_item_fee_sumamt AS amount_at_risk,
       l.setl_time AS event_time,
       {'hilist_code': l.hilist_code, 'hilist_name': l.hilist_name, 'care_setting': k.care_setting,
        'allowed_zh': CASE k.care_setting WHEN 'inpatient' THEN '住院' ELSE '住院或急诊' END,
        'med_type': l.med_type, 'point_id': k.point_id} AS detail
FROM claim_line l
JOIN (SELECT hilist_code, max(care_setting) AS care_setting, min(point_id) AS point_id  -- the wider wins
      FROM rule_pack WHERE rule_kind = 'care_setting'
      GROUP BY hilist_code) k ON k.hilist_code = l.hilist_code
WHERE l.in_scope AND l.cnt > 0
  AND NOT EXISTS (SELECT 1 FROM rule_codes c
                  WHERE c.code_set = 'med_type_class' AND c.code = l.med_type
                    AND (c.value = 'inpatient'
                         OR (c.value = 'emergency' AND k.care_setting = 'inpatient_or_emergency')))
