-- 超量开药/重复开药: a person who draws more of a drug than the days pass, prescribed by several doctors'
-- institutions. For each dispensing (one settlement's lines of one drug with days supply, prd_days) the rule
-- looks back $window_days days over the person's dispensings of the same drug at every institution and
-- pharmacy: the days they supply (this one included) against the days from the first of them to the end of
-- this one. A hit when
--   * the supply exceeds those days by more than the tolerance ($tolerance: 0.25 = a quarter more than
--     needed) and by at least $min_excess_days days,
--   * those days are at least $min_elapsed_days (drawing beyond need is judged over months: a course of an
--     acute drug or a pack bought just before a refill is not), and
--   * at least $min_prescribers institutions that prescribe ($prescriber_types: hospitals and clinics, not
--     pharmacies) are among the dispensings' places: 重复开药 is prescribing across doctors and institutions.
-- A refill a few days early, one overlapping refill when a patient moves their 慢病 registration, or refills
-- filled at a pharmacy instead stay below; drawing 1.4-2x the need from several places for months does not.
-- What is counted:
--   * a drug is its 集采 group when it has one (hilist.vbp_group: substitutes cover the same need), else its
--     generic name (hilist.generic_name), else its code;
--   * drugs taken home only ($dispensing_care_classes: outpatient visits, emergencies and pharmacy
--     purchases; a stay's drugs are given on the ward), and only those the fund pays for: 甲/乙
--     ($covered_levels, hilist.chrgitm_lv; unknown counts), not 丙;
--   * a single dispensing of more than $max_dispensing_days days (the 12 weeks a 长期处方 may cover) is not
--     an ordinary prescription or purchase — it breaks the per-dispensing limit, or nothing was dispensed
--     at all (a swipe) — and is left out: this rule reads the accumulation of ordinary dispensings;
--   * only supply the dispensing institution's stock records can back (进销存, stock_backing): a line
--     whose month has a stock record counts when the books back at least $min_backed_share of the insured
--     sales of the code in the months around it ($backing_lag_months either side: a receipt or stock-out
--     booked a month or two late is not a gap) — the stock-out, or opening + in-flow when smaller, as
--     drug_substitution.sql measures it; below that, the line more likely than not was never on the shelf
--     and does not count, and a dispensing left with no days is left out. What was billed but never in
--     stock was not handed to the patient: a pharmacy that bills a dear drug on the card in place of what
--     it hands over (串换) over-supplies the card, not the person, and is drug_substitution's hit. Lines of
--     months without a stock record count in full (no data is not a gap);
--   * nor a line dispensed on a day the person lay in hospital elsewhere (strictly inside a stay at another
--     institution): the ward gave the drugs, and what the card drew meanwhile was not taken home by its
--     holder — someone else used the card (card_theft) or the stay was not real (bed_hold).
-- Dispensings are ordered by settlement time: precheck sees the same past as the batch run.
-- One hit per person and dispensing; evidence = the dispensing's lines; amount at risk = the value of the
-- excess: its amount times the share of the window's supply that is beyond the days elapsed.
-- How it is computed (city: 11M fee lines, 4.7M dispensings): the rolling window is judged only for the
-- persons and drugs that could reach the thresholds at all (candidate: all their lines together bill
-- enough days and come from enough prescribing institutions: 3 % of the lines on city), and the stock
-- backing is computed once per institution, code and month with a stock record (stock_share), not once
-- per line; the lines are read without claim_line's person join (drug_line). None of this changes a hit:
-- see the comments of those CTEs.
WITH drug_line AS (    -- the lines of drugs taken home and paid by the fund, with days supply
    -- The lines of claim_line (_base.sql) with the columns used here, read from its first two sources: the
    -- view's third join, the person (sex, birth date; psn_info and the vault hold one row per psn_no, so it
    -- adds columns, never lines), is of no use here and took a third of the rule's CPU time on city (a hash
    -- of the 5M drug lines).
    SELECT l.bkkp_sn, l.setl_id, l.mdtrt_id, l.psn_no, l.fixmedins_code,
           CAST(l.fee_ocur_time AS DATE) AS fee_date, l.hilist_code, l.hilist_name, l.det_item_fee_sumamt,
           l.bilg_dr_code, l.prd_days, s.setl_time, s.in_scope, s.fixmedins_type,
           coalesce('集采组' || nullif(c.vbp_group, ''), c.generic_name, l.hilist_code) AS drug,
           year(l.fee_ocur_time) * 12 + month(l.fee_ocur_time) - 1 AS month_idx
    FROM fee_list_d l
    JOIN claim_setl s ON s.setl_id = l.setl_id
    LEFT JOIN hilist c ON c.hilist_code = l.hilist_code
    WHERE l.cnt > 0 AND l.prd_days > 0 AND l.list_type IN ('101', '102')
      AND list_contains($dispensing_care_classes, s.care_class)
      AND coalesce(list_contains($covered_levels, c.chrgitm_lv), true)
), candidate AS (  -- persons × drugs that can have a hit: every hit's window is a subset of their lines
    -- A hit needs a window supply of at least $min_elapsed_days + $min_excess_days days (elapsed >= the one,
    -- supply - elapsed >= the other) and $min_prescribers prescribing institutions among its dispensings.
    -- All the person's lines of the drug bill at least the supply of any window (a window's supply is the
    -- backed part of some of them; each dispensing's is positive) and come from at least its institutions:
    -- below either bound over all time, no window of theirs reaches it. Two or more institutions are
    -- tested as min < max, not by counting distinct codes (a second hash of every person × drug ×
    -- institution): a necessary condition is enough here, the window counts them exactly.
    SELECT psn_no, drug
    FROM drug_line
    GROUP BY psn_no, drug
    HAVING sum(prd_days) >= $min_elapsed_days + $min_excess_days
       AND CASE WHEN $min_prescribers >= 2
                THEN min(fixmedins_code) FILTER (WHERE list_contains($prescriber_types, fixmedins_type))
                     < max(fixmedins_code) FILTER (WHERE list_contains($prescriber_types, fixmedins_type))
                ELSE count(fixmedins_code) FILTER (WHERE list_contains($prescriber_types, fixmedins_type))
                     >= $min_prescribers END
), taken AS (      -- the candidates' lines, less those dispensed while the person lay in hospital elsewhere
    SELECT l.*
    FROM drug_line l
    JOIN candidate k ON k.psn_no = l.psn_no AND k.drug = l.drug
    WHERE NOT EXISTS (SELECT 1 FROM claim_mdtrt st
                      WHERE st.psn_no = l.psn_no AND st.care_class = 'inpatient'
                        AND st.fixmedins_code <> l.fixmedins_code
                        AND l.fee_date > st.begin_date AND l.fee_date < st.end_date)
), stock_share AS (  -- per institution, code and month with a stock record: the share of the months' sales
    -- around it (± $backing_lag_months) the books back. A line's backing depends on its institution, code
    -- and month only, so it is computed once per stock record of the codes taken (stock_backing has one
    -- row per institution, code and month: a line finds at most one; a line of a month without a record
    -- finds none and counts in full).
    SELECT m.fixmedins_code, m.hilist_code, m.month_idx,
           least(sum(w.out_qty), arg_min(w.opening_qty, w.month_idx) + sum(w.in_qty)) / nullif(sum(w.billed_qty), 0)
               AS backed_share
    FROM stock_backing m
    JOIN stock_backing w ON w.fixmedins_code = m.fixmedins_code AND w.hilist_code = m.hilist_code
                        AND w.month_idx BETWEEN m.month_idx - $backing_lag_months AND m.month_idx + $backing_lag_months
    WHERE EXISTS (SELECT 1 FROM taken t WHERE t.fixmedins_code = m.fixmedins_code AND t.hilist_code = m.hilist_code)
    GROUP BY m.fixmedins_code, m.hilist_code, m.month_idx
), counted AS (
    SELECT t.*, coalesce(b.backed_share >= $min_backed_share, true) AS backed
    FROM taken t
    LEFT JOIN stock_share b ON b.fixmedins_code = t.fixmedins_code AND b.hilist_code = t.hilist_code
                           AND b.month_idx = t.month_idx
), dispensing AS (
    SELECT l.psn_no, l.drug, l.setl_id,
           min(l.fee_date) AS rx_date, sum(l.prd_days) AS billed_days,
           sum(l.prd_days) FILTER (WHERE l.backed) AS supply_days, list(l.bkkp_sn ORDER BY l.bkkp_sn) AS lines,
           sum(l.det_item_fee_sumamt) AS amount, any_value(l.in_scope) AS in_scope, any_value(l.setl_time) AS setl_time,
           any_value(l.mdtrt_id) AS mdtrt_id, any_value(l.fixmedins_code) AS fixmedins_code,
           coalesce(list_contains($prescriber_types, any_value(l.fixmedins_type)), false) AS prescriber,
           min(l.bilg_dr_code) AS prac_code, min(l.hilist_name) AS hilist_name
    FROM counted l
    GROUP BY l.psn_no, l.drug, l.setl_id
    HAVING sum(l.prd_days) <= $max_dispensing_days AND sum(l.prd_days) FILTER (WHERE l.backed) > 0
), supplied AS (  -- per dispensing in scope: the window's dispensings up to it (itself included)
    SELECT a.setl_id, a.drug, sum(b.supply_days) AS window_supply_days, min(b.rx_date) AS window_from,
           sum(b.billed_days - b.supply_days) AS unbacked_days,
           count(*) AS dispensings, count(DISTINCT b.fixmedins_code) AS institutions,
           count(DISTINCT b.fixmedins_code) FILTER (WHERE b.prescriber) AS prescribers
    FROM dispensing a
    JOIN dispensing b ON b.psn_no = a.psn_no AND b.drug = a.drug
             AND b.rx_date > a.rx_date - CAST($window_days AS INTEGER)
             AND (b.setl_time < a.setl_time OR b.setl_id = a.setl_id)
    WHERE a.in_scope
    GROUP BY a.setl_id, a.drug
), measured AS (
    SELECT a.*, s.window_supply_days, s.window_from, s.dispensings, s.institutions, s.prescribers, s.unbacked_days,
           date_diff('day', s.window_from, a.rx_date) + a.supply_days AS elapsed_days
    FROM dispensing a
    JOIN supplied s ON s.setl_id = a.setl_id AND s.drug = a.drug
)
SELECT 'psn' AS entity_type, psn_no AS entity_id, setl_id, mdtrt_id, psn_no, fixmedins_code, prac_code,
       lines AS evidence,
       -- the excess share of the amount, to the cent, half away from zero, in whole cents (exact on every
       -- engine: a DOUBLE product rounded at a half cent goes one way on DuckDB and the other on Spark)
       sign(amount) * floor((2 * abs(CAST(round(amount * 100) AS BIGINT)) * (window_supply_days - elapsed_days)
                             + window_supply_days) / (2 * window_supply_days)) / 100 AS amount_at_risk,
       setl_time AS event_time,
       {'drug': drug, 'hilist_name': hilist_name, 'rx_date': CAST(rx_date AS VARCHAR), 'supply_days': supply_days,
        'window_from': CAST(window_from AS VARCHAR), 'dispensings': dispensings, 'institutions': institutions,
        'prescribers': prescribers, 'window_supply_days': window_supply_days, 'elapsed_days': elapsed_days,
        'unbacked_days': unbacked_days,
        'supply_ratio': round(window_supply_days / elapsed_days, 2),
        'excess_days': round(window_supply_days - elapsed_days, 1)} AS detail
FROM measured
WHERE window_supply_days > (1 + $tolerance) * elapsed_days
  AND window_supply_days - elapsed_days >= $min_excess_days
  AND elapsed_days >= $min_elapsed_days
  AND prescribers >= $min_prescribers
