-- 虚假诊疗 in the policies' focus areas (吉医保联〔2024〕14号: 精神疾病、康复理疗、血液透析): an institution
-- whose outpatients are billed more sessions than the care can hold, in at least one area:
--   血液透析  more than $max_dialysis_per_week session days per patient and calendar week (Mon-Sun): a
--            maintenance schedule is 2-3 sessions a week. A dialysis line: a code starting with one of
--            $dialysis_code_prefixes, or a name like one of $dialysis_names;
--   康复理疗  more than $max_rehab_sessions_per_day rehabilitation sessions per patient and day (settlements
--            with a treatment line, med_chrgitm_type in $treatment_chrgitm_types, billed by a department
--            whose code starts with one of $rehab_dept_prefixes);
--   精神科    more than $max_psych_visits_per_month psychiatric visits (settlements with a line billed by a
--            department $psych_dept_prefixes) per patient and calendar month.
-- Inpatient settlements are left out: a stay honestly bills daily dialysis (acute kidney injury), therapy
-- twice a day or a long psychiatric stay; bed days beyond the stay are the 两库 frequency rule's.
-- The sessions beyond the limit, in time order, are the excess. An area counts when its excess sessions
-- are at least $min_excess_sessions and the patient-periods over the limit at least $min_excess_share of
-- its patient-periods (sporadic make-up sessions and keying slips stay below that).
-- One hit per institution. Evidence: the lines of the excess sessions (the $max_evidence_lines largest; the
-- detail counts them all); amount at risk: their amount.
WITH outpatient_line AS (
    SELECT * FROM claim_line WHERE care_class <> 'inpatient' AND cnt > 0
), area_session AS (  -- one row per settlement and focus area it belongs to
    SELECT 'dialysis' AS area, fixmedins_code, psn_no, setl_id, bool_or(in_scope) AS in_scope,
           min(fee_ocur_time) AS session_time
    FROM outpatient_line
    WHERE len(list_filter($dialysis_code_prefixes, lambda p: starts_with(hilist_code, p))) > 0
       OR len(list_filter($dialysis_names, lambda p: hilist_name LIKE p)) > 0
    GROUP BY ALL
    UNION ALL
    SELECT 'rehabilitation', fixmedins_code, psn_no, setl_id, bool_or(in_scope), min(fee_ocur_time)
    FROM outpatient_line
    WHERE list_contains($treatment_chrgitm_types, med_chrgitm_type)
      AND len(list_filter($rehab_dept_prefixes, lambda p: starts_with(coalesce(bilg_dept_codg, ''), p))) > 0
    GROUP BY ALL
    UNION ALL
    SELECT 'psychiatry', fixmedins_code, psn_no, setl_id, bool_or(in_scope), min(fee_ocur_time)
    FROM outpatient_line
    WHERE len(list_filter($psych_dept_prefixes, lambda p: starts_with(coalesce(bilg_dept_codg, ''), p))) > 0
    GROUP BY ALL
), period AS (        -- the period each limit applies to, and the limit
    SELECT *, CAST(session_time AS DATE) AS session_date,
           CASE area WHEN 'dialysis' THEN date_trunc('week', CAST(session_time AS DATE))
                     WHEN 'rehabilitation' THEN CAST(session_time AS DATE)
                     ELSE date_trunc('month', CAST(session_time AS DATE)) END AS period_start,
           CASE area WHEN 'dialysis' THEN $max_dialysis_per_week
                     WHEN 'rehabilitation' THEN $max_rehab_sessions_per_day
                     ELSE $max_psych_visits_per_month END AS max_sessions
    FROM area_session
), ranked AS (        -- dialysis counts session days; the other areas count settlements
    SELECT *,
           CASE WHEN area = 'dialysis'
                THEN dense_rank() OVER (PARTITION BY area, fixmedins_code, psn_no, period_start ORDER BY session_date)
                ELSE row_number() OVER (PARTITION BY area, fixmedins_code, psn_no, period_start
                                        ORDER BY session_time, setl_id) END AS session_no
    FROM period
), per_area AS (
    SELECT area, fixmedins_code,
           count(DISTINCT (psn_no, period_start)) AS patient_periods,
           count(DISTINCT (psn_no, period_start)) FILTER (WHERE session_no > max_sessions AND in_scope)
               AS periods_over,
           count(DISTINCT CASE WHEN area = 'dialysis' THEN CAST(session_date AS VARCHAR) || psn_no ELSE setl_id END)
               FILTER (WHERE session_no > max_sessions AND in_scope) AS excess_sessions,
           count(DISTINCT psn_no) FILTER (WHERE session_no > max_sessions AND in_scope) AS patients_over,
           count(DISTINCT psn_no) AS patients, any_value(max_sessions) AS max_sessions
    FROM ranked
    GROUP BY ALL
), flagged_area AS (
    SELECT *, round(periods_over / patient_periods, 3) AS share_over
    FROM per_area
    WHERE excess_sessions >= $min_excess_sessions AND periods_over >= $min_excess_share * patient_periods
), excess_setl AS (   -- the excess settlements of the flagged areas
    SELECT DISTINCT r.fixmedins_code, r.setl_id
    FROM ranked r JOIN flagged_area f USING (area, fixmedins_code)
    WHERE r.session_no > r.max_sessions AND r.in_scope
), lines AS (
    SELECT e.fixmedins_code, l.bkkp_sn, l.det_item_fee_sumamt, l.setl_time,
           row_number() OVER (PARTITION BY e.fixmedins_code ORDER BY l.det_item_fee_sumamt DESC, l.bkkp_sn) AS k
    FROM excess_setl e JOIN claim_line l ON l.setl_id = e.setl_id
), evidence AS (
    SELECT fixmedins_code, list(bkkp_sn ORDER BY bkkp_sn) FILTER (WHERE k <= $max_evidence_lines) AS evidence,
           count(*) AS n_lines, sum(det_item_fee_sumamt) AS amount, min(setl_time) AS first_time
    FROM lines GROUP BY fixmedins_code
), per_institution AS (
    SELECT fixmedins_code, sum(excess_sessions) AS excess_sessions,
           list({'area': area, 'patients': patients, 'patients_over': patients_over,
                 'patient_periods': patient_periods, 'periods_over': periods_over, 'share_over': share_over,
                 'max_sessions': max_sessions, 'excess_sessions': excess_sessions} ORDER BY area) AS areas,
           string_agg(CASE area WHEN 'dialysis' THEN '血液透析每周超过' WHEN 'rehabilitation' THEN '康复理疗每日超过'
                                ELSE '精神科门诊每月超过' END
                      || CAST(max_sessions AS VARCHAR) || '次的患者' || CASE area WHEN 'dialysis' THEN '周'
                      WHEN 'rehabilitation' THEN '日' ELSE '月' END || CAST(periods_over AS VARCHAR) || '个（占'
                      || CAST(round(100 * share_over, 1) AS VARCHAR) || '%），多出' || CAST(excess_sessions AS VARCHAR)
                      || '次', '；' ORDER BY area) AS areas_zh
    FROM flagged_area GROUP BY fixmedins_code
)
SELECT 'fixmedins' AS entity_type, p.fixmedins_code AS entity_id, NULL AS setl_id, NULL AS mdtrt_id,
       NULL AS psn_no, p.fixmedins_code, NULL AS prac_code, e.evidence, e.amount AS amount_at_risk,
       e.first_time AS event_time,
       {'areas_zh': p.areas_zh, 'areas': p.areas, 'excess_sessions': p.excess_sessions,
        'n_lines': e.n_lines} AS detail
FROM per_institution p JOIN evidence e USING (fixmedins_code)
