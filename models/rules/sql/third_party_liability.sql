-- 应由工伤/第三方支付: an injury (main diagnosis in the ICD-10 chapters $injury_prefixes, 损伤) whose external
-- cause (外因, another diagnosis of the settlement) puts the cost on someone else, paid by the medical fund:
-- the work-injury fund or the liable third party should pay (《社会保险法》第三十条).
--   traffic: a transport accident, V01-V99 ($traffic_cause_prefixes): the liable party (its insurer) pays;
--   work:    the supplementary code Y96 与工作有关的情况 ($work_cause_prefixes), or an external cause of
--            W00-Y34 ($place_coded_cause_prefixes) whose place of occurrence — the first character after the
--            dot — is an industrial or construction area (a character of $work_place_characters, ICD-10
--            '6'), or whose activity character — the second after the dot — is work (a character of
--            $work_activity_characters, ICD-10 '2' working for income; none by default: the national 医保
--            version uses that position for its own extensions).
-- An injury at home, at play or in the street with a W/X cause is the fund's to pay, whatever the object
-- that struck or cut. A settlement the fund paid nothing for (the liable party paid, settled as self-paid)
-- is no hit. Before settlement (precheck) the fund's share is not known yet and the settlement counts as
-- paid by the fund. Codes are compared in their canonical form ('W20.600', 'Y96.x00').
-- One hit per settlement with fund payment; evidence and amount at risk = all its lines.
WITH injury AS (  -- settlements whose main diagnosis is an injury
    SELECT d.setl_id, min(d.diag_code) AS injury_code
    FROM claim_diag d
    WHERE d.in_scope AND d.maindiag_flag = '1' AND list_contains($injury_prefixes, left(d.diag_code, 1))
    GROUP BY d.setl_id
), coded AS (  -- their other diagnoses, read as external causes
    SELECT d.setl_id, d.diag_code, d.diag_name,
           coalesce(list_bool_or(list_transform($traffic_cause_prefixes,
                                                lambda prefix: starts_with(d.diag_code, prefix))), false) AS traffic,
           coalesce(list_bool_or(list_transform($work_cause_prefixes,
                                                lambda prefix: starts_with(d.diag_code, prefix))), false)
           OR (coalesce(list_bool_or(list_transform($place_coded_cause_prefixes,
                                                    lambda prefix: starts_with(d.diag_code, prefix))), false)
               AND ((substr(d.diag_code, 4, 1) = '.' AND substr(d.diag_code, 5, 1) <> ''
                     AND contains($work_place_characters, substr(d.diag_code, 5, 1)))
                    OR (substr(d.diag_code, 4, 1) = '.' AND substr(d.diag_code, 6, 1) <> ''
                        AND contains($work_activity_characters, substr(d.diag_code, 6, 1))))) AS work
    FROM claim_diag d
    WHERE d.setl_id IN (SELECT setl_id FROM injury)
), cause AS (  -- the causes that put the cost on someone else
    SELECT setl_id, min(diag_code) AS cause_code, arg_min(diag_name, diag_code) AS cause_name,
           bool_or(traffic) AS traffic, bool_or(work) AS work
    FROM coded
    WHERE traffic OR work
    GROUP BY setl_id
), paid AS (
    SELECT s.setl_id, s.mdtrt_id, s.psn_no, s.fixmedins_code, s.setl_time, s.medfee_sumamt, s.hifp_pay,
           i.injury_code, c.cause_code, c.cause_name, c.traffic, c.work
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
        'liable_zh': CASE WHEN i.traffic AND i.work THEN '工伤保险或交通事故责任方'
                          WHEN i.traffic THEN '交通事故责任方' ELSE '工伤保险' END,
        'fund_paid': i.hifp_pay} AS detail
FROM paid i
LEFT JOIN claim_line l ON l.setl_id = i.setl_id
LEFT JOIN mdtrt_d m ON m.mdtrt_id = i.mdtrt_id
GROUP BY ALL
