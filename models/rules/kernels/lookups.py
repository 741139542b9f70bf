"""Knowledge points and code lists as dicts (知识点查找表), built once from the pack and the config the SQL reads.

Each table here is the SQL's own knowledge-point subquery (the ``k``/``pair``/``g`` CTE of the rule's
file in ``models/rules/sql/``: the same grouping, the same ``min``/``max``), run once at start-up on the
checker's database (``rule_pack``, ``fixmedins``, ``hilist``) and kept as a dict keyed by catalogue code.
Code lists (``rule_codes``: institution levels, care classes) come from the :class:`RuleConfig`;
thresholds stay in the rules' ``params`` (rules.yaml) and are read from there by the kernels.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping

import duckdb

from models.rules.config import RuleConfig

__all__ = ["Lookups"]

# rule kind -> the knowledge-point subquery of its rule's SQL (keyed by hilist_code, first column).
_POINTS = {
    "gender": "SELECT hilist_code, min(gend) AS gend, min(point_id) AS point_id FROM rule_pack "
              "WHERE rule_kind = 'gender' GROUP BY hilist_code HAVING count(DISTINCT gend) = 1",
    "age": "SELECT hilist_code, min(point_id), max(value_text), max(age_min), min(age_max) FROM rule_pack "
           "WHERE rule_kind = 'age' GROUP BY hilist_code",
    "insurance_type": "SELECT hilist_code, min(insurance_only), min(point_id) FROM rule_pack "
                      "WHERE rule_kind = 'insurance_type' GROUP BY hilist_code",
    "care_setting": "SELECT hilist_code, max(care_setting), min(point_id) FROM rule_pack "
                    "WHERE rule_kind = 'care_setting' GROUP BY hilist_code",
    "institution_level": "SELECT hilist_code, min(min_hosp_level), min(point_id) FROM rule_pack "
                         "WHERE rule_kind = 'institution_level' GROUP BY hilist_code",
    "course_length": "SELECT hilist_code, max_days, point_id, course_key, "
                     "max(min_interval_days) OVER (PARTITION BY course_key) FROM ("
                     "SELECT c.hilist_code, min(c.max_days) AS max_days, min(c.point_id) AS point_id, "
                     "min(c.batch || ':' || coalesce(CAST(c.rule_row AS VARCHAR), left(c.hilist_code, 12))) "
                     "AS course_key, "
                     "coalesce(max(c.min_interval_days), max(p.period_days), 0) AS min_interval_days "
                     "FROM rule_pack c LEFT JOIN rule_pack p ON p.rule_kind = 'period_frequency' "
                     "AND p.hilist_code = c.hilist_code AND p.max_count = 1 "
                     "WHERE c.rule_kind = 'course_length' AND c.max_days IS NOT NULL GROUP BY c.hilist_code)",
    "frequency": "SELECT hilist_code, min(max_count), min(count_unit), min(point_id) FROM rule_pack "
                 "WHERE rule_kind = 'frequency' GROUP BY hilist_code",
    "period_frequency": "SELECT hilist_code, left(hilist_code, 12), min(max_count), min(period_days), "
                        "min(point_id) FROM rule_pack WHERE rule_kind = 'period_frequency' GROUP BY hilist_code",
}


@dataclass(frozen=True)
class Lookups:
    """What the kernels look up, by code. Values are tuples of the subquery's columns after the code."""

    points: Mapping[str, Mapping[str, tuple]]              # rule kind -> hilist_code -> knowledge point
    duplicate_pairs: Mapping[str, tuple[tuple, ...]]       # sub code -> (main_code, main_name, window, point_id)
    duplicate_main_codes: frozenset[str]
    duplicate_includes: frozenset[tuple[str, str]]         # (main code, sub code) of any batch-7 row
    surgery_groups: Mapping[str, tuple[tuple[str, str], ...]]  # code -> (surgery_group, point_id), distinct
    catalogue: Mapping[str, tuple[Decimal | None, str | None]]  # code -> (pric_uplmt_amt, generic_name)
    institutions: Mapping[str, tuple[int | None, str | None]]   # fixmedins_code -> (hosp_level, type)
    hosp_level: Mapping[str, int]                          # national hosp_lv -> level
    care_class: Mapping[str, str]                          # med_type -> inpatient | emergency (min of both)
    med_type_classes: Mapping[str, frozenset[str]]         # med_type -> every class the codes give it
    # code -> (the drug it is for days-supply purposes: '集采组' + its 集采 group, else its generic name;
    # its 甲/乙/丙 level chrgitm_lv) — over_prescription.sql's LEFT JOIN of hilist
    drugs: Mapping[str, tuple[str | None, str | None]]
    # (fixmedins_code, hilist_code) -> month (year * 12 + month - 1) -> (opening_qty, in_qty, out_qty,
    # billed_qty): the 进销存 per month and that month's insured sales (``stock_backing`` of _base.sql,
    # computed over the whole warehouse); months without a stock record are absent
    stock: Mapping[tuple[str, str], Mapping[int, tuple[float, float, float, float]]]

    @classmethod
    def build(cls, db: duckdb.DuckDBPyConnection, config: RuleConfig) -> "Lookups":
        """Run the knowledge-point subqueries on *db* (``rule_pack``, ``fixmedins``, ``hilist``,
        ``stock_backing``)."""
        points = {kind: {r[0]: tuple(r[1:]) for r in db.execute(sql).fetchall()} for kind, sql in _POINTS.items()}
        pairs: dict[str, list[tuple]] = {}
        for main_code, main_name, sub_code, window, point_id in db.execute(
                'SELECT hilist_code, hilist_name, related_code, "window", min(point_id) FROM rule_pack '
                "WHERE rule_kind = 'duplicate_charge' GROUP BY ALL ORDER BY ALL").fetchall():
            pairs.setdefault(sub_code, []).append((main_code, main_name, window, point_id))
        includes = frozenset(db.execute("SELECT DISTINCT hilist_code, related_code FROM rule_pack "
                                        "WHERE rule_kind = 'duplicate_charge'").fetchall())
        groups: dict[str, list[tuple[str, str]]] = {}
        for code, group, point_id in db.execute(
                "SELECT DISTINCT hilist_code, surgery_group, point_id FROM rule_pack "
                "WHERE rule_kind = 'primary_secondary_surgery' ORDER BY ALL").fetchall():
            groups.setdefault(code, []).append((group, point_id))
        catalogue = {code: (cap, generic) for code, cap, generic in db.execute(
            "SELECT hilist_code, pric_uplmt_amt, generic_name FROM hilist").fetchall()}
        type_level = {"clinic": config.clinic_level, "pharmacy": config.pharmacy_level}
        institutions = {}
        for code, ftype, hosp_lv in db.execute(
                "SELECT fixmedins_code, fixmedins_type, hosp_lv FROM fixmedins").fetchall():
            level = type_level.get(ftype)
            institutions[code] = (level if level is not None else config.hosp_level.get(hosp_lv), ftype)
        classes: dict[str, set[str]] = {}
        for code_set, code, value in config.code_rows():
            if code_set == "med_type_class":
                classes.setdefault(code, set()).add(value)
        return cls(points=points, duplicate_pairs={k: tuple(v) for k, v in pairs.items()},
                   duplicate_main_codes=frozenset(p[0] for v in pairs.values() for p in v),
                   duplicate_includes=includes, surgery_groups={k: tuple(v) for k, v in groups.items()},
                   catalogue=catalogue, institutions=institutions, hosp_level=dict(config.hosp_level),
                   care_class={k: min(v) for k, v in classes.items()},
                   med_type_classes={k: frozenset(v) for k, v in classes.items()}, drugs=_drugs(db),
                   stock=_stock(db))

    def point(self, kind: str, code: str) -> Any:
        return self.points[kind].get(code)


def _drugs(db: duckdb.DuckDBPyConnection) -> dict[str, tuple[str | None, str | None]]:
    """``coalesce('集采组' || nullif(vbp_group, ''), generic_name)`` and ``chrgitm_lv`` per catalogue code."""
    return {code: ("集采组" + group if group not in (None, "") else generic, level)
            for code, group, generic, level in db.execute(
                "SELECT hilist_code, vbp_group, generic_name, chrgitm_lv FROM hilist").fetchall()}


def _stock(db: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], dict[int, tuple[float, float, float, float]]]:
    """``stock_backing`` by (institution, code) and month."""
    out: dict[tuple[str, str], dict[int, tuple[float, float, float, float]]] = {}
    for fix, code, month, opening, in_qty, out_qty, billed in db.execute(
            "SELECT fixmedins_code, hilist_code, month_idx, opening_qty, in_qty, out_qty, billed_qty "
            "FROM stock_backing").fetchall():
        out.setdefault((fix, code), {})[month] = (opening, in_qty, out_qty, billed)
    return out
