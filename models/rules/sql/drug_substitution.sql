-- 进销存不符 (串换药品): an institution that keeps stock records (stock_moves) and whose insured sales of a
-- drug (the billed quantity of its fee lines, list types $list_types) exceed what its stock records can
-- support: the recorded out-quantity (销售出库), or opening stock + in-flow (期初 + 购进) when that is
-- smaller. A drug billed with no stock record at all has nothing to support it.
--
-- Bookkeeping lags are not evidence: a receipt or a month-end batch of stock-outs booked a month or two
-- late puts one month short and the next ones over. So a drug is judged over the whole period — the
-- months in scope, extended back to at least $min_period_months months — and is flagged when at least
-- $min_unsupported_share of its insured sales there have no stock behind them. Its months whose own
-- sales exceed their own support are the evidence; the unsupported quantity in scope (at most the
-- period's) is valued at the drug's billed unit price. One hit per institution when its flagged drugs
-- put at least $min_amount_yuan at risk.
--
-- Evidence: the fee lines of the flagged drug-months, the $max_evidence_lines largest (the detail counts
-- them all); amount at risk: the value of the unsupported sales, not of all the lines.
WITH tracked AS (   -- institutions that submit stock records at all
    SELECT DISTINCT fixmedins_code FROM stock_moves
), sold AS (        -- insured sales per institution, drug and month
    SELECT l.fixmedins_code, l.hilist_code,
           year(l.fee_ocur_time) * 12 + month(l.fee_ocur_time) - 1 AS month_idx,
           sum(l.cnt) AS billed_qty, sum(l.det_item_fee_sumamt) AS billed_amt,
           bool_or(l.in_scope) AS in_scope, any_value(l.hilist_name) AS hilist_name
    FROM claim_line l
    JOIN tracked t ON t.fixmedins_code = l.fixmedins_code
    WHERE l.cnt > 0 AND list_contains($list_types, l.list_type)
    GROUP BY ALL
), period AS (      -- the months judged: those in scope, and enough before them
    SELECT min(month_idx) AS scope_from, min(month_idx) - ($min_period_months - 1) AS period_from
    FROM sold WHERE in_scope
), stock AS (       -- the stock record per institution, drug and month ('YYYY-MM')
    SELECT fixmedins_code, hilist_code,
           CAST(substr("month", 1, 4) AS INTEGER) * 12 + CAST(substr("month", 6, 2) AS INTEGER) - 1 AS month_idx,
           sum(opening_qty) AS opening_qty, sum(in_qty) AS in_qty, sum(out_qty) AS out_qty
    FROM stock_moves
    GROUP BY ALL
), own AS (         -- each month on its own
    SELECT s.*, coalesce(least(k.out_qty, k.opening_qty + k.in_qty), 0) AS supported_qty
    FROM sold s
    LEFT JOIN stock k USING (fixmedins_code, hilist_code, month_idx)
), item_sales AS (
    SELECT o.fixmedins_code, o.hilist_code, any_value(o.hilist_name) AS hilist_name,
           sum(o.billed_qty) AS billed_qty, sum(o.billed_amt) AS billed_amt,
           sum(greatest(o.billed_qty - o.supported_qty, 0)) FILTER (WHERE o.in_scope) AS month_gaps_in_scope
    FROM own o CROSS JOIN period p
    WHERE o.month_idx >= p.period_from
    GROUP BY ALL
), item_stock AS (
    SELECT k.fixmedins_code, k.hilist_code, sum(k.out_qty) AS out_qty,
           arg_min(k.opening_qty, k.month_idx) + sum(k.in_qty) AS available_qty
    FROM stock k CROSS JOIN period p
    WHERE k.month_idx >= p.period_from
    GROUP BY ALL
), item AS (
    SELECT i.*, coalesce(least(k.out_qty, k.available_qty), 0) AS supported_qty
    FROM item_sales i LEFT JOIN item_stock k USING (fixmedins_code, hilist_code)
), flagged_item AS (
    SELECT *, billed_qty - supported_qty AS period_gap,
           least(billed_qty - supported_qty, coalesce(month_gaps_in_scope, 0)) AS unsupported_qty,
           least(billed_qty - supported_qty, coalesce(month_gaps_in_scope, 0)) * billed_amt / billed_qty
               AS unsupported_amt
    FROM item
    WHERE billed_qty - supported_qty > 0 AND billed_qty - supported_qty >= $min_unsupported_share * billed_qty
), flagged_month AS (  -- the evidence: in-scope months of a flagged drug short on their own
    SELECT o.fixmedins_code, o.hilist_code, o.month_idx, o.billed_qty, o.supported_qty
    FROM own o JOIN flagged_item f USING (fixmedins_code, hilist_code)
    WHERE o.in_scope AND o.billed_qty > o.supported_qty
), per_institution AS (
    SELECT f.fixmedins_code, count(*) AS n_items, sum(f.billed_qty) AS billed_qty,
           sum(f.supported_qty) AS supported_qty, sum(f.unsupported_qty) AS unsupported_qty,
           sum(f.unsupported_amt) AS unsupported_amt,
           list({'hilist_code': f.hilist_code, 'hilist_name': f.hilist_name, 'billed_qty': f.billed_qty,
                 'supported_qty': f.supported_qty, 'unsupported_qty': f.unsupported_qty,
                 'unsupported_amt': round(f.unsupported_amt, 2)}
                ORDER BY f.unsupported_amt DESC, f.hilist_code) AS items
    FROM flagged_item f
    GROUP BY f.fixmedins_code
    HAVING sum(f.unsupported_amt) >= $min_amount_yuan
), months AS (
    SELECT fixmedins_code, count(*) AS n_item_months, min(month_idx) AS first_idx, max(month_idx) AS last_idx,
           list({'hilist_code': hilist_code, 'month': printf('%04d-%02d', month_idx // 12, month_idx % 12 + 1),
                 'billed_qty': billed_qty, 'supported_qty': supported_qty}
                ORDER BY billed_qty - supported_qty DESC, hilist_code, month_idx)[1:20] AS item_months
    FROM flagged_month GROUP BY fixmedins_code
), lines AS (       -- the fee lines of the flagged drug-months
    SELECT l.fixmedins_code, l.bkkp_sn, l.det_item_fee_sumamt, l.setl_time,
           row_number() OVER (PARTITION BY l.fixmedins_code
                              ORDER BY l.det_item_fee_sumamt DESC, l.bkkp_sn) AS k
    FROM claim_line l
    JOIN flagged_month f ON f.fixmedins_code = l.fixmedins_code AND f.hilist_code = l.hilist_code
                        AND f.month_idx = year(l.fee_ocur_time) * 12 + month(l.fee_ocur_time) - 1
    WHERE l.cnt > 0 AND l.fixmedins_code IN (SELECT fixmedins_code FROM per_institution)
), evidence AS (
    SELECT fixmedins_code, list(bkkp_sn ORDER BY bkkp_sn) FILTER (WHERE k <= $max_evidence_lines) AS evidence,
           count(*) AS n_lines, sum(det_item_fee_sumamt) AS lines_amt, min(setl_time) AS first_time
    FROM lines
    GROUP BY fixmedins_code
)
SELECT 'fixmedins' AS entity_type, p.fixmedins_code AS entity_id, NULL AS setl_id, NULL AS mdtrt_id,
       NULL AS psn_no, p.fixmedins_code, NULL AS prac_code, e.evidence,
       -- to the cent, half away from zero, as floor(|x|·100 + 0.5): round() of a DOUBLE at a half cent goes
       -- up on DuckDB (x·100 first) and down on Spark (the double's exact decimal value)
       sign(p.unsupported_amt) * floor(abs(p.unsupported_amt) * 100 + 0.5) / 100 AS amount_at_risk, e.first_time AS event_time,
       {'n_items': p.n_items, 'n_item_months': m.n_item_months,
        'billed_qty': round(p.billed_qty, 1), 'supported_qty': round(p.supported_qty, 1),
        'unsupported_qty': round(p.unsupported_qty, 1),
        'unsupported_pct': CAST(round(100 * (p.billed_qty - p.supported_qty) / p.billed_qty, 1) AS VARCHAR) || '%',
        'first_month': printf('%04d-%02d', m.first_idx // 12, m.first_idx % 12 + 1),
        'last_month': printf('%04d-%02d', m.last_idx // 12, m.last_idx % 12 + 1),
        'top_items_zh': array_to_string(list_transform(p.items[1:3], lambda x: printf('%s 医保销售%s、可支撑%s',
            x.hilist_name, CAST(round(x.billed_qty, 1) AS VARCHAR), CAST(round(x.supported_qty, 1) AS VARCHAR))),
            '；'),
        'items': p.items[1:10], 'item_months': m.item_months,
        'n_lines': e.n_lines, 'lines_amount': CAST(round(e.lines_amt, 2) AS DECIMAL(18, 2))} AS detail
FROM per_institution p
JOIN months m USING (fixmedins_code)
JOIN evidence e USING (fixmedins_code)
