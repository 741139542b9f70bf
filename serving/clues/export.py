"""The clue list as an Excel workbook (导出清单): what the investigator's list shows, for offline work.

One row per clue under Chinese headers; amounts, probabilities and dates are typed cells (numbers and
dates, not text), so that the workbook sums and sorts. A second sheet, 筛选条件, says which filters made
the list, who exported it and when, and how many clues matched. Region codes carry their names from the
national code list (``features.contract.region_name``).

>>> from openpyxl import load_workbook
>>> import io
>>> row = {"id": 7, "entity_type_zh": "定点医疗机构", "entity_id": "H001", "entity_name": "某医院", "region": "220103",
...        "risk_level_zh": "高", "typologies_zh": ["虚假诊疗"], "sources_zh": ["模型"], "p_fraud": 0.9,
...        "amount_at_risk": 1234.5, "priority": 1111.05, "state_zh": "新线索", "assignee": None,
...        "created_at": "2025-03-01 09:00:00", "due_at": "2025-03-31 09:00:00", "overdue": False,
...        "confirmed_amount": None, "recovered_amount": None}
>>> wb = load_workbook(io.BytesIO(clue_list_xlsx([row], filters={"risk_level": "high"}, total=1, user="li")))
>>> [c.value for c in wb["线索清单"][2]][:7]
[7, '定点医疗机构', 'H001', '某医院', '220103', '宽城区', '高']
>>> wb["线索清单"]["K2"].value
1234.5
"""

from __future__ import annotations

import io
from datetime import datetime

from features.contract import region_name
from serving.clues.models import RISK_LEVELS

__all__ = ["XLSX_MEDIA_TYPE", "XLSX_COLUMNS", "clue_list_xlsx", "FILTER_LABELS"]

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# header -> (field of the clue summary, kind). kind: text, int, money, share, time, list, flag, region_name.
XLSX_COLUMNS: dict[str, tuple[str, str]] = {
    "编号": ("id", "int"),
    "对象类型": ("entity_type_zh", "text"),
    "对象编码": ("entity_id", "text"),
    "名称": ("entity_name", "text"),
    "地区代码": ("region", "text"),
    "地区": ("region", "region_name"),
    "风险等级": ("risk_level_zh", "text"),
    "违规类型": ("typologies_zh", "list"),
    "来源": ("sources_zh", "list"),
    "欺诈概率": ("p_fraud", "share"),
    "涉及金额(元)": ("amount_at_risk", "money"),
    "优先级(元)": ("priority", "money"),
    "状态": ("state_zh", "text"),
    "承办人": ("assignee", "text"),
    "首次发现": ("created_at", "time"),
    "核查期限": ("due_at", "time"),
    "逾期": ("overdue", "flag"),
    "查实金额(元)": ("confirmed_amount", "money"),
    "追回金额(元)": ("recovered_amount", "money"),
}
# Filter id -> its Chinese name on the 筛选条件 sheet (the ids of serving.clues.store.LIST_FILTERS, and sort).
FILTER_LABELS = {"state": "状态", "entity_type": "对象类型", "typology": "违规类型", "source": "来源", "region": "地区",
                 "risk_level": "风险等级", "min_priority": "优先级下限", "min_amount": "涉及金额下限",
                 "max_amount": "涉及金额上限", "overdue": "仅逾期", "assignee": "承办人", "q": "搜索", "sort": "排序"}
_FORMATS = {"money": "#,##0.00", "share": "0.0%", "time": "yyyy-mm-dd hh:mm"}


def clue_list_xlsx(items: list[dict], *, filters: dict | None = None, total: int | None = None, user: str = "",
                   sla_days: dict[str, int] | None = None, now: datetime | None = None) -> bytes:
    """The clue summaries ``items`` (as ``ClueStore.list`` gives them) as an .xlsx file's bytes."""
    from openpyxl import Workbook
    from openpyxl.styles import Font, PatternFill

    wb = Workbook()
    ws = wb.active
    ws.title = "线索清单"
    ws.append(list(XLSX_COLUMNS))
    for cell in ws[1]:
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="DDE6F0")
    for c in items:
        ws.append([_cell(c.get(field), kind) for field, kind in XLSX_COLUMNS.values()])
    for j, (header, (_, kind)) in enumerate(XLSX_COLUMNS.items(), start=1):
        letter = ws.cell(row=1, column=j).column_letter
        if kind in _FORMATS:
            for (cell,) in ws.iter_rows(min_row=2, min_col=j, max_col=j):
                cell.number_format = _FORMATS[kind]
        ws.column_dimensions[letter].width = {"名称": 28, "违规类型": 24, "首次发现": 17, "核查期限": 17}.get(
            header, max(10, 2 * len(header) + 2))
    ws.freeze_panes = "A2"
    ws.auto_filter.ref = ws.dimensions

    about = wb.create_sheet("筛选条件")
    about.append(["项目", "值"])
    about.append(["导出时间", (now or datetime.now()).strftime("%Y-%m-%d %H:%M:%S")])
    about.append(["导出人", user])
    about.append(["符合条件的线索", total if total is not None else len(items)])
    about.append(["本表行数", len(items)])
    for key, value in (filters or {}).items():
        if value is not None and value != "":
            about.append([FILTER_LABELS.get(key, key), value if not isinstance(value, bool) else ("是" if value else "否")])
    for level, days in (sla_days or {}).items():
        about.append([f"核查期限({RISK_LEVELS.get(level, level)}风险, 天)", days])
    about.column_dimensions["A"].width = 22
    about.column_dimensions["B"].width = 30
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _cell(value, kind: str):
    if value is None:
        return None
    if kind == "list":
        return "、".join(value)
    if kind == "flag":
        return "是" if value else "否"
    if kind == "region_name":
        return region_name(value) or ""
    if kind == "time":
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
    if kind in ("money", "share"):
        return float(value)
    return value
