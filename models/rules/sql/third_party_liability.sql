-- 应由工伤/第三方支付: an injury (main diagnosis in the ICD-10 chapters $injury_prefixes, 损伤) whose external
-- cause (外因, another diagnosis of the settlement) is a traffic accident or a work injury
-- ($third_party_cause_prefixes), paid by the medical fund: the work-injury fund or the liable third party
-- should pay (《社会保险法》第三十条). Before settlement (precheck) the fund's share is not known yet and the
-- settlement counts as paid by the fund.
-- One hit per settlement with fund payment; evidence and amount at risk = all its lines.
WITH injury AS (  -- settlements whose main diagnosis is an injury
    SELECT d.setl_id, min(d.diag_code) AS injury_code
    FROM claim_diag d
    WHERE d.in_scope AND d.maindiag_flag = '1' AND list_contains($injury_prefixes, left(d.diag_code, 1))
    GROUP BY d.setl_id
), cause AS (  -- their external causes that put the cost on someone else
    SELECT d.setl_id, min(d.diag_code) AS cause_code, min(d.diag_name) AS cause_name
    FROM claim_diag d
    WHERE d.setl_id IN (SELECT setl_id FROM injury)
      AND list_has_any($third_party_cause_prefixes, [left(d.diag_code, 1), left(d.diag_code, 3)])
    GROUP BY d.setl_id
), paid AS (
    SELECT s.setl_id, s.mdtrt_id, s.psn_no, s.fixmedins_code, s.setl_time, s.medfee_sumamt, s.hifp_pay,
           i.injury_code, c.cause_code, c.cause_name
    FROM injury i
    JOIN cause c ON c.setl_id = i.setl_id
    JOIN claim_setl s ON s.setl_id = i.setl_id
    WHERE coalesce(s.hifp_pay, s.fund_pay_sumamt, s.medfee_sumamt) > 0
)
SELECT 'setl' AS entity_type, i.setl_id AS entity_id, i.setl_id, i.mdtrt_id, i.psn_no, i.fixmedins_code,
       any_value(m.chfpdr_code) AS prac_code,
       list(l.bkkp_sn ORDER BY l.bkkp_sn) FILTER (WHERE l.bkkp_sn IS NOT NULL) AS evidence,
       coalesce(sum(l.det_item_fee_sumamt), any_value(i.medfee_sumamt)) AS amount_at_risk,
       i.setl_time AS event_time,
       {'injury_code': i.injury_code, 'cause_code': i.cause_code, 'cause_name': i.cause_name,
        'fund_paid': i.hifp_pay} AS detail
FROM paid i
LEFT JOIN claim_line l ON l.setl_id = i.setl_id
LEFT JOIN mdtrt_d m ON m.mdtrt_id = i.mdtrt_id
GROUP BY ALL
