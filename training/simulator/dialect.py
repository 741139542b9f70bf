"""Extract dialects (数据方言): the same simulated region, written the way a 医保局's own extract writes it.

A real extract carries the national codes in forms of its own: service-item codes (医疗服务项目) that lost
their leading ``00`` in a spreadsheet (13 digits), with an institution's local suffix (``-a``), as the
9-digit 价格项目 code, in full-width digits, lower case or padded with spaces; ICD-10 codes as ``J18900``
or ``j18.9``; CSV files in GBK/GB18030 or UTF-8 with a BOM, CRLF line ends and ``2024/01/05`` dates. A
dialect rewrites the code columns of the contract frames, and nothing else, so the region stays the same
(same persons, visits, lines and labels) and every rule must find the same hits on it.

=================  =====================================================================================
``national``       the contract's own forms (what ``simulate`` wrote before dialects existed)
``lost-zeros``     every 15-digit service-item code without its ``00`` (fee lines, catalogue, stock)
``local-suffix``   service-item codes on fee lines with an institution-local suffix (``-a``, ``_02``, ``B``)
``mixed``          one seeded style per institution (national, 13-digit, suffixed, 9-digit price code
                   where the region's catalogue maps it back uniquely, full-width, lower case, padded),
                   ICD-10 per institution as ``J18.900``, ``J18900`` or ``j18.9``, department codes
                   lower case or padded, the catalogue in 13-digit form; as CSV also GBK/GB18030 or
                   UTF-8-with-BOM files per table, CRLF, ``YYYY/MM/DD`` dates
=================  =====================================================================================

The functions per table are pure: a frame and a :class:`DialectPlan` in, a frame out.

>>> plan = plan_dialect("lost-zeros", institutions=pd.DataFrame({"fixmedins_code": ["H1"],
...                     "fixmedins_type": ["hospital"]}), catalogue=["001201000010000", "XA01"], seed=7)
>>> hilist(pd.DataFrame({"hilist_code": ["001201000010000", "XA01"]}), plan)["hilist_code"].tolist()
['1201000010000', 'XA01']
>>> icd_form("N39.000", "short_lower"), icd_form("I10.x00", "undotted")
('n39.0', 'I10x00')
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = [
    "DIALECTS",
    "ITEM_STYLES",
    "ICD_STYLES",
    "DEPT_STYLES",
    "FILE_ENCODINGS",
    "DialectPlan",
    "plan_dialect",
    "rewrite",
    "fee_list_d",
    "hilist",
    "stock_moves",
    "setl_list_diag_d",
    "mdtrt_d",
    "practitioner",
    "item_form",
    "icd_form",
    "dept_form",
    "price_codes",
]

DIALECTS = ("national", "lost-zeros", "local-suffix", "mixed")
# How an institution writes catalogue codes (医保目录编码) on its fee lines and stock moves.
ITEM_STYLES = ("national", "lost_zeros", "local_suffix", "price_code", "fullwidth", "lower", "padded")
# How it writes ICD-10 codes: J18.900, J18900, j18.9.
ICD_STYLES = ("national", "undotted", "short_lower")
# How it writes department codes: A03.04, a03.04, ' A03.04 '.
DEPT_STYLES = ("national", "lower", "padded")
# File encodings of a mixed CSV extract, one per table.
FILE_ENCODINGS = ("gbk", "gb18030", "utf-8-sig")
# Date styles of a mixed CSV extract, one per table: 2024/01/05 or 2024/1/5.
DATE_STYLES = ("slash", "slash_short")

# Local suffixes an institution appends (separator, tokens): '-a', '-2', '_02', 'B'. Never '.' or '+',
# which would make a code look like a float ('001201000010000.0').
_SUFFIXES = (("-", "abc"), ("-", "123"), ("_", ("01", "02", "03")), ("", "ABC"))
_ITEM15 = re.compile(r"00[0-9]{13}")
_ICD = re.compile(r"([A-Z])([0-9]{2})\.([0-9A-Za-z]+)")


@dataclass(frozen=True)
class DialectPlan:
    """What a dialect writes, decided once per region from its seed.

    Institutions missing from a mapping write the national form.
    """

    name: str
    seed: int
    items: Mapping[str, str] = field(default_factory=dict)  # fixmedins_code -> ITEM_STYLES
    icd: Mapping[str, str] = field(default_factory=dict)  # fixmedins_code -> ICD_STYLES
    dept: Mapping[str, str] = field(default_factory=dict)  # fixmedins_code -> DEPT_STYLES
    suffixes: Mapping[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)  # code -> (sep, tokens)
    price: Mapping[str, str] = field(default_factory=dict)  # national item code -> its unique 9-digit code
    catalogue: str = "national"  # ITEM_STYLES of the catalogue (hilist)
    stock: str = "national"  # ITEM_STYLES of stock moves when not per institution (lost-zeros)
    encodings: Mapping[str, str] = field(default_factory=dict)  # table -> FILE_ENCODINGS (mixed CSV)
    dates: Mapping[str, str] = field(default_factory=dict)  # table -> DATE_STYLES (mixed CSV)

    @property
    def is_national(self) -> bool:
        return self.name == "national"

    @property
    def crlf(self) -> bool:
        """Whether CSV files end lines with CRLF."""
        return self.name == "mixed"

    def summary(self) -> dict:
        """Plain JSON for ``simulation.json``: per kind of code, how many institutions write each style;
        the catalogue's style; per table its date style (mixed CSV). Empty for ``national``."""
        if self.is_national:
            return {}
        out: dict = {"catalogue": self.catalogue}
        for kind, styles in (("items", self.items), ("icd", self.icd), ("dept", self.dept)):
            if styles:
                out[kind] = {s: n for s, n in sorted(Counter(styles.values()).items())}
        if self.price:
            out["price_codes"] = len(self.price)
        if self.dates:
            out["dates"] = dict(sorted(self.dates.items()))
        return out


def plan_dialect(name: str, *, institutions: pd.DataFrame, catalogue: Iterable[str], seed: int,
                 tables: Iterable[str] = ()) -> DialectPlan:
    """The plan of dialect ``name`` for a region with these ``institutions`` (``fixmedins_code``,
    ``fixmedins_type``) and ``catalogue`` codes (``hilist_code``); ``tables`` are the contract tables
    that get a file encoding and a date style (mixed CSV).

    In ``mixed``, each style goes to institutions of each type in turn, in a seeded order, so a region
    with as many hospitals as styles has every style.
    """
    if name not in DIALECTS:
        raise ValueError(f"unknown dialect {name!r}; choose one of {', '.join(DIALECTS)}")
    codes = sorted(str(c) for c in institutions["fixmedins_code"])
    if name == "national":
        return DialectPlan(name, seed)
    if name == "lost-zeros":
        return DialectPlan(name, seed, items=dict.fromkeys(codes, "lost_zeros"), catalogue="lost_zeros",
                           stock="lost_zeros")
    suffixes = _suffix_plan(codes, seed)
    if name == "local-suffix":
        return DialectPlan(name, seed, items=dict.fromkeys(codes, "local_suffix"), suffixes=suffixes)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xD1A1]))
    by_type = institutions.assign(fixmedins_code=institutions["fixmedins_code"].astype(str)).sort_values(
        ["fixmedins_type", "fixmedins_code"])
    items, icd, dept = {}, {}, {}
    for _, group in by_type.groupby("fixmedins_type", sort=True):
        members = group["fixmedins_code"].tolist()
        for styles, out in ((ITEM_STYLES, items), (ICD_STYLES, icd), (DEPT_STYLES, dept)):
            order = rng.permutation(len(members))
            for i, j in enumerate(order):
                out[members[j]] = styles[i % len(styles)]
    table_names = list(tables)
    encodings = {t: FILE_ENCODINGS[i % len(FILE_ENCODINGS)] for i, t in
                 enumerate(np.array(table_names, dtype=object)[rng.permutation(len(table_names))])}
    dates = {t: DATE_STYLES[int(rng.integers(len(DATE_STYLES)))] for t in table_names}
    return DialectPlan(name, seed, items=items, icd=icd, dept=dept, suffixes=suffixes,
                       price=price_codes(catalogue), catalogue="lost_zeros",
                       encodings={t: encodings[t] for t in table_names}, dates=dates)


def rewrite(tables: Mapping[str, pd.DataFrame], plan: DialectPlan) -> dict[str, pd.DataFrame]:
    """The contract frames of one chunk (or the reference tables) with their codes in ``plan``'s forms.

    Tables without code columns pass through unchanged. ``setl_list_diag_d`` takes its institution from
    the ``mdtrt_d`` of the same chunk.
    """
    if plan.is_national:
        return dict(tables)
    out = {}
    for name, df in tables.items():
        if name == "fee_list_d":
            out[name] = fee_list_d(df, plan)
        elif name == "hilist":
            out[name] = hilist(df, plan)
        elif name == "stock_moves":
            out[name] = stock_moves(df, plan)
        elif name == "mdtrt_d":
            out[name] = mdtrt_d(df, plan)
        elif name == "practitioner":
            out[name] = practitioner(df, plan)
        elif name == "setl_list_diag_d":
            visits = tables.get("mdtrt_d")
            institution = (pd.Series(visits["fixmedins_code"].to_numpy(), index=visits["mdtrt_id"].to_numpy())
                           if visits is not None else pd.Series(dtype=object))
            out[name] = setl_list_diag_d(df, plan, institution_of_visit=institution)
        else:
            out[name] = df
    return out


def fee_list_d(fee: pd.DataFrame, plan: DialectPlan) -> pd.DataFrame:
    """Fee lines (费用明细): ``hilist_code`` and ``med_list_codg`` in the institution's item style, the
    billing department (``bilg_dept_codg``) in its department style."""
    out = fee.copy()
    inst = fee["fixmedins_code"]
    for col in ("hilist_code", "med_list_codg"):
        if col in fee:
            out[col] = _items(fee[col], inst, plan.items, plan)
    if "bilg_dept_codg" in fee:
        out["bilg_dept_codg"] = _by_institution(fee["bilg_dept_codg"], inst, plan.dept, dept_form)
    return out


def hilist(catalogue: pd.DataFrame, plan: DialectPlan) -> pd.DataFrame:
    """The catalogue (医保目录) in the plan's catalogue style (region-wide: one catalogue)."""
    out = catalogue.copy()
    out["hilist_code"] = [item_form(c, plan.catalogue, plan=plan) for c in catalogue["hilist_code"]]
    return out


def stock_moves(stock: pd.DataFrame, plan: DialectPlan) -> pd.DataFrame:
    """进销存: ``hilist_code`` in the pharmacy's item style (suffixes and price codes are fee-line habits)."""
    out = stock.copy()
    styles = {k: ("national" if v in ("local_suffix", "price_code") else v) for k, v in plan.items.items()}
    out["hilist_code"] = _items(stock["hilist_code"], stock["fixmedins_code"], styles, plan)
    return out


def setl_list_diag_d(diag: pd.DataFrame, plan: DialectPlan, *, institution_of_visit: pd.Series) -> pd.DataFrame:
    """Settlement diagnoses: ``diag_code`` in the ICD style of the visit's institution
    (``institution_of_visit``: mdtrt_id -> fixmedins_code)."""
    out = diag.copy()
    inst = diag["mdtrt_id"].map(institution_of_visit)
    out["diag_code"] = _by_institution(diag["diag_code"], inst, plan.icd, icd_form)
    return out


def mdtrt_d(visits: pd.DataFrame, plan: DialectPlan) -> pd.DataFrame:
    """Visits: the discharge diagnosis in the institution's ICD style, the admitting department in its
    department style."""
    out = visits.copy()
    inst = visits["fixmedins_code"]
    if "dscg_maindiag_code" in visits:
        out["dscg_maindiag_code"] = _by_institution(visits["dscg_maindiag_code"], inst, plan.icd, icd_form)
    if "adm_dept_codg" in visits:
        out["adm_dept_codg"] = _by_institution(visits["adm_dept_codg"], inst, plan.dept, dept_form)
    return out


def practitioner(prac: pd.DataFrame, plan: DialectPlan) -> pd.DataFrame:
    """Practitioners: the department (``dept_codg``) in their institution's department style."""
    out = prac.copy()
    if "dept_codg" in prac:
        out["dept_codg"] = _by_institution(prac["dept_codg"], prac["fixmedins_code"], plan.dept, dept_form)
    return out


def item_form(code: str | None, style: str, *, plan: DialectPlan | None = None, institution: str = "") -> str | None:
    """``code`` (a national catalogue code) written in ``style`` (:data:`ITEM_STYLES`).

    ``local_suffix`` and ``price_code`` need the ``plan`` (the institution's suffixes, the unique price
    codes); a code the style does not apply to is returned as it is.

    >>> [item_form("001201000010000", s) for s in ("lost_zeros", "fullwidth", "padded")]
    ['1201000010000', '００１２０１００００１００００', ' 001201000010000 ']
    >>> item_form("XA01AAA012A001", "lower")
    'xa01aaa012a001'
    """
    if code is None or style == "national":
        return code
    service = bool(_ITEM15.fullmatch(code))
    if style == "lost_zeros":
        return code[2:] if service else code
    if style == "local_suffix":
        if not service or plan is None or institution not in plan.suffixes:
            return code
        sep, tokens = plan.suffixes[institution]
        return code + sep + tokens[zlib.crc32(f"{plan.seed}|{institution}|{code}".encode()) % len(tokens)]
    if style == "price_code":
        return plan.price.get(code, code) if plan is not None else code
    if style == "fullwidth":
        return "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in code)
    if style == "lower":
        return code.lower()
    if style == "padded":
        return f" {code} "
    raise ValueError(f"unknown item style {style!r}; one of {', '.join(ITEM_STYLES)}")


def icd_form(code: str | None, style: str) -> str | None:
    """An ICD-10 code of the national 医保 version (``J18.900``) written in ``style`` (:data:`ICD_STYLES`):
    ``undotted`` ``J18900``; ``short_lower`` ``j18.9`` (trailing zeros dropped, one digit kept).

    >>> icd_form("J18.900", "undotted"), icd_form("J18.900", "short_lower"), icd_form("S72.000", "short_lower")
    ('J18900', 'j18.9', 's72.0')
    """
    if code is None or style == "national":
        return code
    match = _ICD.fullmatch(code)
    if not match:
        return code
    letter, digits, rest = match.groups()
    if style == "undotted":
        return f"{letter}{digits}{rest}"
    if style == "short_lower":
        return f"{letter}{digits}.{rest.rstrip('0') or '0'}".lower()
    raise ValueError(f"unknown ICD style {style!r}; one of {', '.join(ICD_STYLES)}")


def dept_form(code: str | None, style: str) -> str | None:
    """A department code (科室编码) written in ``style`` (:data:`DEPT_STYLES`).

    >>> dept_form("A03.04", "lower"), dept_form("A03", "padded")
    ('a03.04', ' A03 ')
    """
    if code is None or style == "national":
        return code
    if style == "lower":
        return code.lower()
    if style == "padded":
        return f" {code} "
    raise ValueError(f"unknown department style {style!r}; one of {', '.join(DEPT_STYLES)}")


def price_codes(catalogue: Iterable[str]) -> dict[str, str]:
    """National service-item codes of ``catalogue`` -> their 9-digit 价格项目 code, for the codes whose
    9-digit code no other service item of the catalogue shares (so it maps back to one code).

    >>> price_codes(["001201000010000", "001201000020000", "001202000010000", "001202000010001"])
    {'001201000010000': '120100001', '001201000020000': '120100002'}
    """
    items = sorted({c for c in catalogue if isinstance(c, str) and _ITEM15.fullmatch(c)})
    short = pd.Series([c[2:11] for c in items], index=items, dtype=object)
    unique = short[~short.duplicated(keep=False)]
    return {c: p for c, p in unique.items() if p[0] != "0"}  # a 9-digit code never starts with 0


# -- private ----------------------------------------------------------------------------------------


def _suffix_plan(institutions: list[str], seed: int) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Each institution's local-suffix habit (separator and tokens), seeded."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5FF1]))
    picks = rng.integers(len(_SUFFIXES), size=len(institutions))
    return {code: (_SUFFIXES[k][0], tuple(_SUFFIXES[k][1])) for code, k in zip(institutions, picks)}


def _items(codes: pd.Series, institutions: pd.Series, styles: Mapping[str, str], plan: DialectPlan) -> pd.Series:
    """Catalogue codes in the item style of the institution of each row (worked out per distinct pair)."""
    return _per_pair(codes, institutions, styles, lambda code, style, inst: item_form(code, style, plan=plan,
                                                                                      institution=inst))


def _by_institution(codes: pd.Series, institutions: pd.Series, styles: Mapping[str, str], form) -> pd.Series:
    return _per_pair(codes, institutions, styles, lambda code, style, inst: form(code, style))


def _per_pair(codes: pd.Series, institutions: pd.Series, styles: Mapping[str, str], form) -> pd.Series:
    """``form(code, style, institution)`` per row, worked out once per distinct (institution, code)."""
    out = codes.to_numpy(dtype=object).copy()
    if styles:
        inst = institutions.to_numpy(dtype=object)
        for name, rows in pd.Series(inst).groupby(inst, sort=False).indices.items():
            style = styles.get(name, "national")
            if style == "national":
                continue
            mapping = {c: form(c, style, name) for c in pd.unique(out[rows]) if isinstance(c, str)}
            out[rows] = [mapping.get(c, c) for c in out[rows]]
    return pd.Series(out, index=codes.index, name=codes.name)
