-- 限年龄 (两库 batch 1 and 8-2): a drug or item restricted to an age group (儿童 under 18, 婴幼儿 under 3,
-- 新生儿 under 28 days, working age 16-60), billed for a person outside it.
-- Knowledge points: rule_pack rows of rule_kind 'age'; the allowed range is age_min <= age < age_max
-- (years). Age is taken on the day of the fee from the exact birth date (the identity vault's, view person
-- of _base.sql; the warehouse keeps only the birth year): full years for limits of
-- a year or more, days for the newborn limit (28/365 of a year = 28 days).
-- One hit per fee line; amount at risk = the line's amount.
WITH k AS (
    SELECT hilist_code, min(point_id) AS point_id, max(value_text) AS value_text,
           max(age_min) AS age_min, min(age_max) AS age_max
    FROM rule_pack WHERE rule_kind = 'age'
    GROUP BY hilist_code
), aged AS (
    SELECT l.*, k.point_id, k.value_text, k.age_min, k.age_max,
           date_sub('year', l.psn_brdy, l.fee_date) AS age_years,
           date_diff('day', l.psn_brdy, l.fee_date) AS age_days
    FROM claim_line l JOIN k ON k.hilist_code = l.hilist_code
    WHERE l.in_scope AND l.cnt > 0 AND l.psn_brdy IS NOT NULL
)
-- The detail keeps the age in days only where the limit is in days (新生儿): with the fee's date it is the
-- birth date, which the warehouse (rule_hits) does not otherwise hold.
SELECT 'line' AS entity_type, bkkp_sn AS entity_id, setl_id, mdtrt_id, psn_no, fixmedins_code,
       bilg_dr_code AS prac_code, [bkkp_sn] AS evidence, det_item_fee_sumamt AS amount_at_risk,
       setl_time AS event_time,
       {'hilist_code': hilist_code, 'hilist_name': hilist_name, 'limit_zh': value_text,
        'age_years': age_years, 'age_days': CASE WHEN age_max < 1 THEN age_days END, 'age_min': age_min,
        'age_max': round(age_max, 4),
        'point_id': point_id} AS detail
FROM aged
WHERE (age_max IS NOT NULL AND CASE WHEN age_max >= 1 THEN age_years >= age_max
                                    ELSE age_days >= round(age_max * 365) END)
   OR (age_min IS NOT NULL AND age_years < age_min)
