"""Rebuild the committed 两库 pack: ``python -m models.rules [SOURCE_DIR] [--effective-from 2024-01-01]``.

Prints knowledge points per file next to the counts published in ``../shared/reference/README.md``,
the skipped rows and the warnings. SOURCE_DIR defaults to ``../shared/reference/liangku`` beside the repo.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from models.rules.pack import DEFAULT_PACK, build_pack
from models.rules.summary import PUBLISHED_COUNTS

def main(argv: list[str] | None = None) -> int:
    repo = Path(__file__).resolve().parents[2]
    parser = argparse.ArgumentParser(prog="python -m models.rules", description=__doc__.splitlines()[0])
    parser.add_argument("source_dir", nargs="?", type=Path, default=repo.parent / "shared" / "reference" / "liangku")
    parser.add_argument("--out", type=Path, default=DEFAULT_PACK)
    parser.add_argument("--effective-from", default="2024-01-01")
    args = parser.parse_args(argv)

    info = build_pack(args.source_dir, args.out, effective_from=args.effective_from)
    print(f"{info.version}  {info.path}  sha256 {info.sha256[:12]}")
    print(f"{'file':45} {'rows':>11} {'points':>7} {'README':>7}  code cells (text/number/padded)")
    for file, points in info.points_per_file.items():
        rows = "+".join(str(n) for n in info.data_rows_per_file[file].values())
        published = PUBLISHED_COUNTS.get(file)
        flag = "" if published == points else "  <-- differs"
        storage = info.code_storage[file]
        print(
            f"{file:45} {rows:>11} {points:>7} {published if published is not None else '-':>7}"
            f"  {storage['text']}/{storage['number']}/{storage['zero_padded']}{flag}"
        )
    print("per rule kind:", dict(info.points_per_rule_kind))
    for s in info.skipped:
        print(f"skipped {s.file}/{s.sheet} row {s.row}: {s.reason}")
    for w in info.warnings:
        print("warning", w)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
