-- 限机构等级 (两库 batch 5): a drug restricted to institutions of level 二级 (or 三级) and above, billed at a
-- lower-level institution. The level comes from the institution register (fixmedins.hosp_lv; clinics and
-- pharmacies by type), else from the settlement's hosp_lv, mapped by rules.yaml codes.hosp_level. A line
-- whose institution level is unknown is not judged.
-- One hit per fee line; amount at risk = the line's amount.
SELECT 'line' AS entity_type, l.bkkp_sn AS entity_id, l.setl_id, l.mdtrt_id, l.psn_no, l.fixmedins_code,
       l.bilg_dr_code AS prac_code, [l.bkkp_sn] AS evidence, l.det_item_fee_sumamt AS amount_at_risk,
       l.setl_time AS event_time,
       {'hilist_code': l.hilist_code, 'hilist_name': l.hilist_name, 'min_hosp_level': k.min_hosp_level,
        'min_level_zh': CASE k.min_hosp_level WHEN 3 THEN '三级' WHEN 2 THEN '二级' ELSE '一级' END,
        'hosp_level': l.hosp_level,
        'level_zh': CASE l.hosp_level WHEN 3 THEN '三级' WHEN 2 THEN '二级' WHEN 1 THEN '一级' ELSE '无等级/基层' END,
        'point_id': k.point_id} AS detail
FROM claim_line l
JOIN (SELECT hilist_code, min(min_hosp_level) AS min_hosp_level, min(point_id) AS point_id
      FROM rule_pack WHERE rule_kind = 'institution_level'
      GROUP BY hilist_code) k ON k.hilist_code = l.hilist_code
WHERE l.in_scope AND l.cnt > 0 AND l.hosp_level IS NOT NULL AND l.hosp_level < k.min_hosp_level
