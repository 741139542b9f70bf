"""What the committed 两库 pack holds, per batch and file, next to the counts published with the spreadsheets.

``shared/reference/README.md`` states a count per file. The pack matches it for 13 files; for batch 8-1
the README says 69 where the spreadsheet has 67 knowledge points: its rows 69 and 70 are a total row
(合计) and a footnote (备注), which the pack records as skipped rows, not knowledge points.

>>> rows = {r.file: r for r in pack_summary()}
>>> r = rows["batch8-1-item-frequency.xlsx"]
>>> (r.points, r.published, r.matches)
(67, 69, False)
>>> "合计" in r.explanation and "备注" in r.explanation
True
>>> sum(r.points for r in rows.values())
15618
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow.parquet as pq

from models.rules.pack import DEFAULT_PACK

__all__ = ["PUBLISHED_COUNTS", "TITLES", "FileSummary", "pack_summary"]

# Counts stated in shared/reference/README.md, per file.
PUBLISHED_COUNTS = {
    "batch1-drug-gender.xlsx": 6472,
    "batch1-drug-age.xlsx": 4398,
    "batch1-item-gender.xlsx": 390,
    "batch1-item-age.xlsx": 30,
    "batch2-item-primary-secondary-surgery.xlsx": 378,
    "batch3-drug-insurance-type.xlsx": 112,
    "batch4-drug-care-setting.xlsx": 736,
    "batch5-drug-institution-level.xlsx": 962,
    "batch6-drug-course-length.xlsx": 1147,
    "batch7-item-duplicate-charge.xlsx": 900,
    "batch8-1-item-frequency.xlsx": 69,
    "batch8-2-item-age.xlsx": 1,
    "batch8-3-item-course-length.xlsx": 11,
    "batch8-4-item-period-frequency.xlsx": 14,
}
# Original titles (shared/reference/liangku/INDEX.tsv).
TITLES = {
    "batch1-drug-gender.xlsx": "【第一批】药品规则库(限定性别对象)",
    "batch1-drug-age.xlsx": "【第一批】药品规则库(限定年龄对象)",
    "batch1-item-gender.xlsx": "【第一批】项目规则库(限定性别对象)",
    "batch1-item-age.xlsx": "【第一批】项目规则库(限定年龄对象)",
    "batch2-item-primary-secondary-surgery.xlsx": "【第二批】项目规则库（限定主次操作）",
    "batch3-drug-insurance-type.xlsx": "【第三批】药品规则库（限定保险类型）",
    "batch4-drug-care-setting.xlsx": "【第四批】药品规则库（限定就医方式）",
    "batch5-drug-institution-level.xlsx": "【第五批】药品规则库（限定机构等级）",
    "batch6-drug-course-length.xlsx": "【第六批】药品规则库（限定支付疗程）",
    "batch7-item-duplicate-charge.xlsx": "【第七批】项目规则库（重复收费）",
    "batch8-1-item-frequency.xlsx": "【第八批-1】项目规则库（限定频次）",
    "batch8-2-item-age.xlsx": "【第八批-2】项目规则库（限定年龄）",
    "batch8-3-item-course-length.xlsx": "【第八批-3】项目规则库（限定疗程）",
    "batch8-4-item-period-frequency.xlsx": "【第八批-4】项目规则库（限定周期）",
}


@dataclass(frozen=True)
class FileSummary:
    batch: str
    file: str
    title_zh: str
    points: int  # knowledge points in the committed pack
    published: int | None  # count stated in shared/reference/README.md
    data_rows: int | None  # rows below the header of the code sheet (Sheet2 of a drug file), from the sidecar
    explanation: str = ""

    @property
    def matches(self) -> bool:
        return self.published == self.points

    def to_dict(self) -> dict:
        return asdict(self) | {"matches": self.matches}


def pack_summary(path: Path = DEFAULT_PACK) -> list[FileSummary]:
    """Knowledge points per file of the committed pack, with the published count and why they differ."""
    table = pq.read_table(path, columns=["file", "batch"])
    counts = table.group_by(["file", "batch"]).aggregate([("file", "count")]).to_pylist()
    sidecar_path = Path(path).with_suffix(".json")
    sidecar = json.loads(sidecar_path.read_text(encoding="utf-8")) if sidecar_path.is_file() else {}
    skipped: dict[str, list[dict]] = {}
    for s in sidecar.get("skipped", []):
        skipped.setdefault(s["file"], []).append(s)
    out = []
    for row in sorted(counts, key=lambda r: (_batch_key(r["batch"]), r["file"])):
        f, n = row["file"], row["file_count"]
        published = PUBLISHED_COUNTS.get(f)
        rows = sidecar.get("data_rows_per_file", {}).get(f)
        explanation = ""
        if published is not None and published != n:
            extra = [s for s in skipped.get(f, []) if s["reason"] != "blank row"]
            parts = [f"第{s['row']}行“{_label(s['reason'])}”" for s in extra]
            explanation = (f"README 的 {published} 把{'、'.join(parts)}也算作行；它们不是知识点 "
                           f"(the README counts {len(extra)} non-data rows: {published} = {n} + {len(extra)})")
        out.append(FileSummary(batch=row["batch"], file=f, title_zh=TITLES.get(f, f), points=n, published=published,
                               data_rows=(rows.get("Sheet2", sum(rows.values())) if rows else None), explanation=explanation))
    return out


def _label(reason: str) -> str:
    text = reason.split(":", 1)[-1].strip(" )'\"")
    return text if len(text) <= 8 else text[:6] + "…"


def _batch_key(batch: str) -> tuple[int, int]:
    head, _, tail = batch.partition("-")
    return int(head), int(tail or 0)
