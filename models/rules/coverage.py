"""Code coverage of the rule base (规则编码覆盖): codes that carry money but match nothing, and rules gone silent.

A 两库 rule fires only on fee lines whose code is one of its knowledge points. When an extract writes its
codes in a form the ingest cannot bring to the national one (``features.codes``: an ambiguous 9-digit
价格项目 code, a local code), whole rule families find nothing and say nothing. This module makes that
visible to the analyst at ingest and after every rule run:

- :func:`unmatched_codes`: catalogue codes of fee lines that are neither in the region's catalogue
  (``hilist``) nor in the 两库 pack, per written form, the largest amounts first;
- :func:`silent_rules`: per 两库 rule and code kind (drug / service item), how many lines carry its
  knowledge points' codes and how many hits it made — a family whose codes never occur while unmatched
  codes of the same kind carry money is *probably silent because of the code form* (a warning); one whose
  codes occur but which made no hit is reported as a notice (that may be honest).

Both read the warehouse's ``fee_list_d``, ``hilist`` and a ``rule_pack`` table (``engine.store_pack`` or
``load_pack_temp``); :func:`silent_rules` also ``rule_hits``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal

from pathlib import Path

import duckdb

from features.codes import code_form
from features.warehouse import connect
from models.rules.config import RuleConfig

__all__ = ["UnmatchedCode", "SilentRule", "unmatched_codes", "unmatched_in_warehouse", "silent_rules", "FORM_ZH",
           "ITEM_FORMS"]

FORM_ZH = {
    "national": "15位国家项目编码", "lost_zeros": "13位(缺前导零)", "price_code": "9位价格项目编码",
    "local_suffix": "带本地后缀", "drug_or_consumable": "药品/耗材编码", "other": "其他形式",
}
# Written forms a service-item code can take; drug and consumable codes have letters.
ITEM_FORMS = frozenset({"national", "lost_zeros", "price_code", "local_suffix", "other"})
_KIND_ZH = {"drug": "药品", "item": "医疗服务项目"}


@dataclass(frozen=True)
class UnmatchedCode:
    """A code billed on fee lines that neither the catalogue nor the 两库 pack knows."""

    hilist_code: str  # as stored (canonical where the ingest could place it)
    written: str  # one way the extract wrote it
    form: str  # features.codes.code_form of the written code
    lines: int
    amount: Decimal

    def to_dict(self) -> dict:
        return asdict(self) | {"amount": float(self.amount), "form_zh": FORM_ZH[self.form]}


@dataclass(frozen=True)
class SilentRule:
    """A 两库 rule (one code kind of it) that may have gone silent."""

    rule_id: str
    code_kind: str  # drug | item
    points: int  # knowledge points of this kind
    lines: int  # fee lines whose code is one of them
    hits: int  # hits of this run whose evidence lines carry such a code
    level: str  # warning (no line carries its codes, unmatched codes of the kind carry money) | notice
    message_zh: str

    def to_dict(self) -> dict:
        return asdict(self)


def unmatched_codes(con: duckdb.DuckDBPyConnection, *, top: int = 20) -> list[UnmatchedCode]:
    """Codes of fee lines found neither in ``hilist`` nor in ``rule_pack``: per written form the ``top``
    largest by amount."""
    raw = "hilist_code_raw" if _has_column(con, "fee_list_d", "hilist_code_raw") else "NULL"
    rows = con.execute(f"""
        SELECT l.hilist_code, any_value(coalesce(l.{raw}, l.hilist_code)), count(*),
               coalesce(sum(l.det_item_fee_sumamt), 0)
        FROM fee_list_d l
        WHERE l.hilist_code IS NOT NULL
          AND l.hilist_code NOT IN (SELECT hilist_code FROM hilist WHERE hilist_code IS NOT NULL)
          AND l.hilist_code NOT IN (SELECT hilist_code FROM rule_pack UNION
                                    SELECT related_code FROM rule_pack WHERE related_code IS NOT NULL)
        GROUP BY 1""").fetchall()
    codes = [UnmatchedCode(code, written, code_form(written), int(n), Decimal(amount))
             for code, written, n, amount in rows]
    codes.sort(key=lambda c: (c.form, -c.amount, c.hilist_code))
    out, per_form = [], {}
    for c in codes:
        per_form[c.form] = per_form.get(c.form, 0) + 1
        if per_form[c.form] <= top:
            out.append(c)
    return sorted(out, key=lambda c: (-c.amount, c.hilist_code))


def unmatched_in_warehouse(warehouse: Path, *, top: int = 20) -> list[UnmatchedCode]:
    """:func:`unmatched_codes` of a warehouse file, against the committed 两库 pack (read-only)."""
    from models.rules.engine import load_pack_temp

    with connect(warehouse, read_only=True) as con:
        load_pack_temp(con)
        return unmatched_codes(con, top=top)


def silent_rules(con: duckdb.DuckDBPyConnection, config: RuleConfig, *,
                 unmatched: list[UnmatchedCode] | None = None, run_id: str | None = None) -> list[SilentRule]:
    """The enabled 两库 rules (those whose ``precheck_when`` names pack rule kinds) that look silent, per
    code kind; hits are those of ``run_id`` (all of ``rule_hits`` when None)."""
    unmatched = unmatched_codes(con) if unmatched is None else unmatched
    lost = {"item": [c for c in unmatched if c.form in ITEM_FORMS],
            "drug": [c for c in unmatched if c.form == "drug_or_consumable"]}
    out = []
    for rule in config.enabled_rules:
        kinds = ((rule.precheck_when or {}).get("line") or {}).get("in_pack")
        if not kinds:
            continue
        for code_kind, points, lines, hits in con.execute("""
            WITH codes AS (
                SELECT code_kind, hilist_code AS code FROM rule_pack WHERE list_contains($kinds, rule_kind)
                UNION SELECT code_kind, related_code FROM rule_pack
                      WHERE list_contains($kinds, rule_kind) AND related_code IS NOT NULL),
            pts AS (SELECT code_kind, count(*) AS n FROM rule_pack WHERE list_contains($kinds, rule_kind) GROUP BY 1),
            seen AS (SELECT c.code_kind, count(*) AS n FROM fee_list_d l JOIN codes c ON c.code = l.hilist_code
                     GROUP BY 1),
            hit AS (SELECT c.code_kind, count(DISTINCT h.hit_id) AS n
                    FROM (SELECT hit_id, unnest(evidence) AS bkkp_sn FROM rule_hits
                          WHERE rule_id = $rule AND ($run IS NULL OR run_id = $run)) h
                    JOIN fee_list_d l ON l.bkkp_sn = h.bkkp_sn JOIN codes c ON c.code = l.hilist_code GROUP BY 1)
            SELECT pts.code_kind, pts.n, coalesce(seen.n, 0), coalesce(hit.n, 0)
            FROM pts LEFT JOIN seen USING (code_kind) LEFT JOIN hit USING (code_kind) ORDER BY 1""",
                {"kinds": list(kinds), "rule": rule.id, "run": run_id}).fetchall():
            kind_zh = _KIND_ZH.get(code_kind, code_kind)
            if lines == 0 and lost.get(code_kind):
                money = sum(c.amount for c in lost[code_kind])
                forms = sorted({FORM_ZH[c.form] for c in lost[code_kind]})
                out.append(SilentRule(
                    rule.id, code_kind, points, 0, hits, "warning",
                    f"规则 {rule.id}（{rule.name_zh}）的 {points} 个{kind_zh}知识点编码在费用明细中一次也未出现，"
                    f"而目录和两库都找不到的{kind_zh}编码有 {sum(c.lines for c in lost[code_kind]):,} 行、"
                    f"{money:,.2f} 元（{'、'.join(forms)}）：疑似编码形式不符，规则静默，请核对编码"))
            elif lines and not hits:
                out.append(SilentRule(
                    rule.id, code_kind, points, lines, 0, "notice",
                    f"规则 {rule.id}（{rule.name_zh}）本次无命中，但有 {lines:,} 行费用明细使用其{kind_zh}知识点编码；"
                    f"如与预期不符，请核对编码和规则配置"))
    return out


def _has_column(con: duckdb.DuckDBPyConnection, table: str, column: str) -> bool:
    return bool(con.execute("SELECT 1 FROM duckdb_columns() WHERE database_name = current_database() "
                            "AND table_name = ? AND column_name = ?", [table, column]).fetchall())
