-- 进销存不符 (串换药品): an institution that keeps stock records (stock_moves) and whose insured sales of a
-- drug (the billed quantity of its fee lines, list types $list_types) in a month exceed what its stock
-- records can support: the recorded out-quantity (销售出库), or opening stock + in-flow (期初 + 购进) when that
-- is smaller. A drug billed with no stock record at all has nothing to support it.
--
-- Bookkeeping lags are not evidence: each month is judged together with the $window_months months either
-- side (a receipt or a stock-out booked a month late balances in the window). A month is flagged when its
-- own sales exceed its own support and, over the window, at least $min_unsupported_share of the sales are
-- unsupported. Its unsupported quantity is the smaller of the two gaps, valued at the month's billed
-- unit price. One hit per institution when the flagged months put at least $min_amount_yuan at risk.
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
), stock AS (       -- the stock record per institution, drug and month ('YYYY-MM')
    SELECT fixmedins_code, hilist_code,
           CAST(substr("month", 1, 4) AS INTEGER) * 12 + CAST(substr("month", 6, 2) AS INTEGER) - 1 AS month_idx,
           sum(opening_qty) AS opening_qty, sum(in_qty) AS in_qty, sum(out_qty) AS out_qty
    FROM stock_moves
    GROUP BY ALL
), own AS (         -- the month on its own
    SELECT s.*, coalesce(least(k.out_qty, k.opening_qty + k.in_qty), 0) AS supported_qty
    FROM sold s
    LEFT JOIN stock k USING (fixmedins_code, hilist_code, month_idx)
), windowed AS (    -- the month with its neighbours
    SELECT o.fixmedins_code, o.hilist_code, o.month_idx,
           (SELECT sum(s2.billed_qty) FROM sold s2
            WHERE s2.fixmedins_code = o.fixmedins_code AND s2.hilist_code = o.hilist_code
              AND abs(s2.month_idx - o.month_idx) <= $window_months) AS billed_w,
           (SELECT coalesce(least(sum(k.out_qty),
                                  arg_min(k.opening_qty, k.month_idx) + sum(k.in_qty)), 0) FROM stock k
            WHERE k.fixmedins_code = o.fixmedins_code AND k.hilist_code = o.hilist_code
              AND abs(k.month_idx - o.month_idx) <= $window_months) AS supported_w
    FROM own o
    WHERE o.in_scope AND o.billed_qty > o.supported_qty
), flagged AS (
    SELECT o.*, w.billed_w, w.supported_w,
           least(o.billed_qty - o.supported_qty, w.billed_w - w.supported_w) AS unsupported_qty,
           least(o.billed_qty - o.supported_qty, w.billed_w - w.supported_w) * o.billed_amt / o.billed_qty
               AS unsupported_amt
    FROM own o
    JOIN windowed w USING (fixmedins_code, hilist_code, month_idx)
    WHERE w.billed_w - w.supported_w >= $min_unsupported_share * w.billed_w
), per_institution AS (
    SELECT fixmedins_code, count(*) AS n_item_months, count(DISTINCT hilist_code) AS n_items,
           sum(billed_qty) AS billed_qty, sum(supported_qty) AS supported_qty,
           sum(unsupported_qty) AS unsupported_qty, sum(unsupported_amt) AS unsupported_amt,
           min(month_idx) AS first_idx, max(month_idx) AS last_idx,
           list({'hilist_code': hilist_code, 'hilist_name': hilist_name,
                 'month': printf('%04d-%02d', month_idx // 12, month_idx % 12 + 1),
                 'billed_qty': billed_qty, 'supported_qty': supported_qty,
                 'unsupported_qty': unsupported_qty}
                ORDER BY unsupported_amt DESC, hilist_code, month_idx) AS item_months
    FROM flagged
    GROUP BY fixmedins_code
    HAVING sum(unsupported_amt) >= $min_amount_yuan
), lines AS (       -- the fee lines of the flagged drug-months
    SELECT l.fixmedins_code, l.bkkp_sn, l.det_item_fee_sumamt, l.setl_time,
           row_number() OVER (PARTITION BY l.fixmedins_code
                              ORDER BY l.det_item_fee_sumamt DESC, l.bkkp_sn) AS k
    FROM claim_line l
    JOIN flagged f ON f.fixmedins_code = l.fixmedins_code AND f.hilist_code = l.hilist_code
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
       round(p.unsupported_amt, 2) AS amount_at_risk, e.first_time AS event_time,
       {'n_item_months': p.n_item_months, 'n_items': p.n_items,
        'billed_qty': round(p.billed_qty, 1), 'supported_qty': round(p.supported_qty, 1),
        'unsupported_qty': round(p.unsupported_qty, 1),
        'unsupported_pct': CAST(round(100 * p.unsupported_qty / p.billed_qty, 1) AS VARCHAR) || '%',
        'first_month': printf('%04d-%02d', p.first_idx // 12, p.first_idx % 12 + 1),
        'last_month': printf('%04d-%02d', p.last_idx // 12, p.last_idx % 12 + 1),
        'top_items_zh': array_to_string(list_transform(p.item_months[1:3], lambda x: printf('%s %s 销售%s/可支撑%s',
            x.hilist_name, x.month, CAST(round(x.billed_qty, 1) AS VARCHAR),
            CAST(round(x.supported_qty, 1) AS VARCHAR))), '；'),
        'item_months': p.item_months[1:20],
        'n_lines': e.n_lines, 'lines_amount': CAST(round(e.lines_amt, 2) AS DECIMAL(18, 2)),
        'window_months': $window_months} AS detail
FROM per_institution p
JOIN evidence e USING (fixmedins_code)
