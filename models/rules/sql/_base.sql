-- 规则公共视图 (views every rule reads).
--
-- The same text runs on the warehouse (`yibao rules run`) and on the temp tables holding one visit and
-- the person's recent history (`precheck`). It reads the contract tables under their national names
-- (setl_d, mdtrt_d, fee_list_d, setl_list_diag_d, psn_info, fixmedins, hilist) plus three small tables
-- the engine fills from the rule config:
--   rule_window(since, history_from)   settlements from `since` on are in scope (hits are reported for
--                                      them); history back to `history_from` is read where a rule needs it
--   rule_codes(code_set, code, value)  code lists of rules.yaml: hosp_lv -> level, med_type -> inpatient /
--                                      emergency, institution type -> level
--   rule_pack                          the national 两库 knowledge points (one row per code and restriction)
--
-- Refunds (退费): a refund settlement (refd_setl_flag = '1') and the settlement it cancels
-- (init_setl_id) are left out everywhere: a refunded violation is not money lost.

CREATE OR REPLACE TEMP VIEW refunded_setl AS
SELECT setl_id FROM setl_d WHERE refd_setl_flag = '1'
UNION
SELECT init_setl_id FROM setl_d WHERE refd_setl_flag = '1' AND init_setl_id IS NOT NULL;

-- National hosp_lv code -> level: 三级 3, 二级 2, 一级 1, 无等级 0 (rules.yaml codes.hosp_level).
CREATE OR REPLACE TEMP VIEW hosp_level_code AS
SELECT code AS hosp_lv, CAST(value AS INTEGER) AS hosp_level FROM rule_codes WHERE code_set = 'hosp_level';

-- med_type -> care class: inpatient, emergency (rules.yaml codes); any other med_type is outpatient.
CREATE OR REPLACE TEMP VIEW med_type_class AS
SELECT code AS med_type, min(value) AS care_class FROM rule_codes WHERE code_set = 'med_type_class' GROUP BY code;

-- Institutions with their level; clinics and pharmacies by type (rules.yaml codes.clinic_level, pharmacy_level).
CREATE OR REPLACE TEMP VIEW institution AS
SELECT f.fixmedins_code, f.fixmedins_name, f.fixmedins_type, f.admdvs, f.hosp_lv,
       coalesce(CAST(t.value AS INTEGER), lv.hosp_level) AS hosp_level
FROM fixmedins f
LEFT JOIN rule_codes t ON t.code_set = 'institution_type_level' AND t.code = f.fixmedins_type
LEFT JOIN hosp_level_code lv ON lv.hosp_lv = f.hosp_lv;

-- Settlements that count: not refunds, not refunded, not older than the history window.
CREATE OR REPLACE TEMP VIEW claim_setl AS
SELECT s.setl_id, s.mdtrt_id, s.psn_no, s.fixmedins_code, s.med_type, s.insutype, s.setl_time,
       s.medfee_sumamt, s.fund_pay_sumamt, s.hifp_pay, s.begndate, s.enddate,
       coalesce(i.hosp_level, lv.hosp_level) AS hosp_level,
       i.fixmedins_type, i.admdvs AS fixmedins_admdvs,
       coalesce(mc.care_class, 'outpatient') AS care_class,
       s.setl_time >= w.since AS in_scope
FROM setl_d s
CROSS JOIN rule_window w
LEFT JOIN institution i ON i.fixmedins_code = s.fixmedins_code
LEFT JOIN hosp_level_code lv ON lv.hosp_lv = s.hosp_lv
LEFT JOIN med_type_class mc ON mc.med_type = s.med_type
WHERE s.setl_time >= w.history_from
  AND NOT EXISTS (SELECT 1 FROM refunded_setl r WHERE r.setl_id = s.setl_id);

-- Persons: sex and death date from the register (psn_info); the exact birth date from the identity vault
-- (psn_birth: the warehouse keeps the birth year only; the engine attaches the vault read-only).
CREATE OR REPLACE TEMP VIEW person AS
SELECT p.psn_no, p.gend, b.brdy, p.die_date, p.insutype, p.insu_admdvs
FROM psn_info p LEFT JOIN psn_birth b ON b.psn_no = p.psn_no;

-- Fee lines of the settlements that count, with what the rules need from the settlement and the person.
CREATE OR REPLACE TEMP VIEW claim_line AS
SELECT l.bkkp_sn, l.setl_id, l.mdtrt_id, l.psn_no, l.fixmedins_code, l.fee_ocur_time,
       CAST(l.fee_ocur_time AS DATE) AS fee_date,
       l.hilist_code, l.hilist_name, l.list_type, l.med_chrgitm_type, l.cnt, l.pric, l.det_item_fee_sumamt,
       l.pric_uplmt_amt, l.bilg_dr_code, l.bilg_dept_codg, l.prd_days,
       s.med_type, s.insutype, s.setl_time, s.in_scope, s.hosp_level, s.fixmedins_type, s.care_class,
       p.gend AS psn_gend, p.brdy AS psn_brdy
FROM fee_list_d l
JOIN claim_setl s ON s.setl_id = l.setl_id
LEFT JOIN person p ON p.psn_no = l.psn_no;

-- Visits (就诊) that have a settlement that counts; begin/end dates and the main diagnosis.
CREATE OR REPLACE TEMP VIEW claim_mdtrt AS
SELECT m.mdtrt_id, m.psn_no, m.fixmedins_code, m.med_type, m.begntime, m.endtime,
       CAST(m.begntime AS DATE) AS begin_date, CAST(m.endtime AS DATE) AS end_date,
       coalesce(m.dscg_maindiag_code, s.main_diag) AS main_diag, m.ipt_days, m.chfpdr_code,
       s.setl_id, s.setl_time, s.in_scope, s.medfee_sumamt, s.care_class, s.fixmedins_type, s.n_setl
FROM mdtrt_d m
JOIN (SELECT s.mdtrt_id, arg_max(s.setl_id, s.setl_time) AS setl_id, max(s.setl_time) AS setl_time,
             bool_or(s.in_scope) AS in_scope, sum(s.medfee_sumamt) AS medfee_sumamt,
             any_value(s.care_class) AS care_class, any_value(s.fixmedins_type) AS fixmedins_type,
             count(*) AS n_setl, min(d.diag_code) AS main_diag
      FROM claim_setl s
      LEFT JOIN setl_list_diag_d d ON d.setl_id = s.setl_id AND d.maindiag_flag = '1'
      GROUP BY s.mdtrt_id) s ON s.mdtrt_id = m.mdtrt_id;

-- Diagnoses of the settlements that count.
CREATE OR REPLACE TEMP VIEW claim_diag AS
SELECT d.setl_id, d.mdtrt_id, d.psn_no, d.maindiag_flag, d.diag_code, d.diag_name, s.in_scope
FROM setl_list_diag_d d
JOIN claim_setl s ON s.setl_id = d.setl_id;

-- Catalogue (医保目录) entries with price cap and 集采 group.
CREATE OR REPLACE TEMP VIEW catalogue AS
SELECT hilist_code, hilist_name, list_type, pric_uplmt_amt, generic_name, vbp_flag, vbp_group FROM hilist;

-- 进销存 per month: per institution, catalogue code and month with a stock record (stock_moves), the
-- record (opening, in-flow, stock-out) and the insured sales of that month (the billed quantity of the
-- institution's fee lines of the code, refunds and what they cancel left out; 0 when none). An
-- institution's month, not one person's: the pre-check computes it once over the whole warehouse.
CREATE OR REPLACE TEMP VIEW stock_backing AS
SELECT k.fixmedins_code, k.hilist_code, k.month_idx, k.opening_qty, k.in_qty, k.out_qty,
       coalesce(s.billed_qty, 0) AS billed_qty
FROM (SELECT fixmedins_code, hilist_code,
             CAST(substr("month", 1, 4) AS INTEGER) * 12 + CAST(substr("month", 6, 2) AS INTEGER) - 1 AS month_idx,
             sum(opening_qty) AS opening_qty, sum(in_qty) AS in_qty, sum(out_qty) AS out_qty
      FROM stock_moves
      GROUP BY ALL) k
LEFT JOIN (SELECT l.fixmedins_code, l.hilist_code,
                  year(l.fee_ocur_time) * 12 + month(l.fee_ocur_time) - 1 AS month_idx, sum(l.cnt) AS billed_qty
           FROM fee_list_d l
           WHERE l.cnt > 0
             AND NOT EXISTS (SELECT 1 FROM refunded_setl r WHERE r.setl_id = l.setl_id)
             AND l.fixmedins_code IN (SELECT fixmedins_code FROM stock_moves)
           GROUP BY ALL) s
  ON s.fixmedins_code = k.fixmedins_code AND s.hilist_code = k.hilist_code AND s.month_idx = k.month_idx;
