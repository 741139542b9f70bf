-- 重复收费 (两库 batch 7): a sub-item (从项) that the main item (主项) already includes, billed with the main
-- item for the same person at the same institution within the pair's window: 单日 (same calendar day),
-- 单次就诊 (same visit), 6小时 (within six hours) or 同一小时 (same clock hour).
-- One hit per sub-item line; evidence and amount at risk = the sub-item line (the duplicated charge);
-- detail.main_line names the main-item line that includes it.
WITH pair AS (
    SELECT hilist_code AS main_code, hilist_name AS main_name, related_code AS sub_code, "window",
           min(point_id) AS point_id
    FROM rule_pack WHERE rule_kind = 'duplicate_charge'
    GROUP BY ALL
), sub AS (
    SELECT l.*, p.main_code, p.main_name, p."window", p.point_id
    FROM claim_line l JOIN pair p ON p.sub_code = l.hilist_code
    WHERE l.in_scope AND l.cnt > 0
), main AS (
    SELECT l.bkkp_sn, l.psn_no, l.fixmedins_code, l.mdtrt_id, l.hilist_code, l.fee_ocur_time, l.fee_date
    FROM claim_line l
    WHERE l.cnt > 0 AND l.hilist_code IN (SELECT main_code FROM pair)
), matched AS (
    SELECT s.*, m.bkkp_sn AS main_line,
           row_number() OVER (PARTITION BY s.bkkp_sn ORDER BY m.fee_ocur_time, m.bkkp_sn) AS k
    FROM sub s
    JOIN main m ON m.psn_no = s.psn_no AND m.fixmedins_code = s.fixmedins_code
               AND m.hilist_code = s.main_code AND m.bkkp_sn <> s.bkkp_sn
    WHERE CASE s."window"
              WHEN 'visit' THEN m.mdtrt_id = s.mdtrt_id
              WHEN 'day' THEN m.fee_date = s.fee_date
              WHEN '6h' THEN abs(epoch(m.fee_ocur_time) - epoch(s.fee_ocur_time)) <= 6 * 3600
              WHEN 'hour' THEN date_trunc('hour', m.fee_ocur_time) = date_trunc('hour', s.fee_ocur_time)
              ELSE false END
)
SELECT 'line' AS entity_type, bkkp_sn AS entity_id, setl_id, mdtrt_id, psn_no, fixmedins_code,
       bilg_dr_code AS prac_code, [bkkp_sn] AS evidence, det_item_fee_sumamt AS amount_at_risk,
       setl_time AS event_time,
       {'hilist_code': hilist_code, 'hilist_name': hilist_name, 'main_code': main_code, 'main_name': main_name,
        'main_line': main_line,
        'window_zh': CASE "window" WHEN 'day' THEN '单日' WHEN 'visit' THEN '单次就诊' WHEN '6h' THEN '6小时'
                                   ELSE '同一小时' END,
        'point_id': point_id} AS detail
FROM matched
WHERE k = 1
