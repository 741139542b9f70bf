"""Canonical codes (编码标准化): one form for every code a rule, a feature or the catalogue joins on.

Real extracts write the same national code in several ways. A service item (医疗服务项目) whose national
医保 code is ``001201000010000`` (``00`` + the 13-digit 价格项目 code) arrives as ``1201000010000`` once it
has passed through a spreadsheet or a numeric column (leading zeros lost), as ``001201000010000-a`` with an
institution's local suffix, as the 9-digit 价格项目 code ``120100001``, with full-width digits, in lower
case or padded with spaces. Diagnoses arrive as ``J18.900``, ``J18900`` or ``j18.9``. A rule that compares
codes as written goes silent on such an extract; so the ingest, the rule pack and the pre-check all pass
codes through the functions here and compare canonical codes only. The original is kept next to it.

Nothing is guessed silently: :func:`canonical` returns the rewrites it made (:data:`REWRITES`), and a code
it cannot place (a 9-digit price code that matches no catalogue entry or several) is left as written and
reported (:data:`UNRESOLVED`).

>>> canonical("list", "1201000010000").code
'001201000010000'
>>> c = canonical("list", " ００１２０１００００１００００-a ")
>>> c.code, c.suffix, c.rewrites
('001201000010000', '-A', ('fullwidth', 'padding', 'case', 'local_suffix'))
>>> canonical("list", "120100001", known={"001201000010000"}).code
'001201000010000'
>>> canonical("list", "120100001", known={"001201000010000", "001201000010001"}).unresolved
'price_code_ambiguous'
>>> canonical("list", "xa01abd075a001010100062").code
'XA01ABD075A001010100062'
>>> [canonical("icd", x).code for x in ("J18.900", "J18900", "j18.9", "I10.X00", "Z51.1")]
['J18.900', 'J18.900', 'J18.900', 'I10.x00', 'Z51.100']
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "CODE_KINDS",
    "FLOAT_CODE_RE",
    "REWRITES",
    "UNRESOLVED",
    "Canonical",
    "canonical",
    "code_form",
    "item_code_forms",
    "CodeMap",
]

# Kinds of code and what canonical means for each:
#   list  医保目录编码 (drugs, service items, consumables): service items in the 15-digit national form
#   icd   ICD-10 diagnosis (national 医保 version): 'J18.900', 'I10.x00'
#   plain department and other codes: upper case, ASCII, no spaces
CODE_KINDS = ("list", "icd", "plain")

# What a rewrite did, in plain words (the ingest report counts rows per kind).
REWRITES: dict[str, str] = {
    "fullwidth": "全角转半角",
    "padding": "去除空格",
    "case": "大小写统一",
    "lost_zeros": "补回前导零(13→15位)",
    "local_suffix": "拆分本地后缀(另存)",
    "price_code": "9位价格编码→15位(唯一匹配)",
    "icd_form": "ICD-10格式统一",
}
# Codes left as written, with the reason.
UNRESOLVED: dict[str, str] = {
    "price_code_ambiguous": "9位价格编码对应多个国家编码，未映射",
    "price_code_unmatched": "9位价格编码在目录中无对应，未映射",
}

# Float spellings of what was an integer code ('310.0', '310.', '1.1020e+12', '1E12'): the digits are lost,
# so such a code is not rewritten (the ingest quarantines it as ``code_as_float``). Also used by the ingest's
# check, in DuckDB's regex syntax, which reads it the same way.
FLOAT_CODE_RE = r"[+-]?[0-9]+\.0*|[+-]?[0-9]+(\.[0-9]+)?[eE][+-]?[0-9]+"

_ITEM15 = re.compile(r"00[0-9]{13}")
_ITEM13 = re.compile(r"[1-9][0-9]{12}")
_PRICE9 = re.compile(r"[1-9][0-9]{8}")
# A national or zero-stripped item code followed by a local suffix: a separator then anything, or a letter
# then anything. Digits straight after the code are not split: '0012010000100001' could be another code.
_WITH_SUFFIX = re.compile(r"(00[0-9]{13}|[1-9][0-9]{12})(?:([-_./#][0-9A-Z]+)|([A-Z][0-9A-Z]*))")
_ICD = re.compile(r"([A-Z])([0-9]{2})(?:\.?([0-9X][0-9A-Z]*))?")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Canonical:
    """The canonical form of one code as written."""

    raw: str | None
    code: str | None  # canonical; the cleaned raw code when it could not be placed
    suffix: str | None = None  # local suffix split off a service-item code ('-A')
    rewrites: tuple[str, ...] = ()  # keys of REWRITES, in the order applied
    unresolved: str | None = None  # key of UNRESOLVED

    @property
    def changed(self) -> bool:
        return self.code != self.raw or self.suffix is not None


def canonical(kind: str, raw: str | None, *, known: Iterable[str] | None = None) -> Canonical:
    """The canonical form of ``raw``, a code of ``kind`` (:data:`CODE_KINDS`).

    ``known`` (``list`` codes only) are the national 15-digit service-item codes of the catalogue: a 9-digit
    价格项目 code is mapped when exactly one of them extends it, and left as written otherwise.
    """
    if kind not in CODE_KINDS:
        raise ValueError(f"unknown code kind {kind!r}; one of {', '.join(CODE_KINDS)}")
    if raw is None:
        return Canonical(None, None)
    if re.fullmatch(FLOAT_CODE_RE, str(raw).strip()):
        return Canonical(raw, raw)
    text, rewrites = _clean(str(raw))
    if kind == "icd":
        code = _icd(text)
        if code != text and "icd_form" not in rewrites:
            rewrites.append("icd_form")
        return Canonical(raw, code, None, tuple(r for r in rewrites if r != "case" or code == text), None)
    if kind == "plain" or not text:
        return Canonical(raw, text or None, None, tuple(rewrites))
    suffix = None
    match = _WITH_SUFFIX.fullmatch(text)
    if match:
        text, suffix = match.group(1), (match.group(2) or match.group(3))
        rewrites.append("local_suffix")
    if _ITEM13.fullmatch(text):
        text = "00" + text
        rewrites.append("lost_zeros")
    elif _PRICE9.fullmatch(text) and suffix is None:
        matches = sorted(c for c in (known or ()) if c.startswith("00" + text) and _ITEM15.fullmatch(c))
        if len(matches) != 1:
            unresolved = "price_code_ambiguous" if matches else "price_code_unmatched"
            return Canonical(raw, text, None, tuple(rewrites), unresolved)
        text = matches[0]
        rewrites.append("price_code")
    return Canonical(raw, text, suffix, tuple(rewrites))


def code_form(raw: str | None) -> str:
    """The written form of a catalogue code, for reports: ``national`` (15-digit service item),
    ``lost_zeros`` (13 digits), ``price_code`` (9 digits), ``local_suffix``, ``drug_or_consumable`` (letters
    and digits), ``other``.

    >>> [code_form(c) for c in ("001201000010000", "1201000010000", "120100001", "XA01ABD075A001010100062")]
    ['national', 'lost_zeros', 'price_code', 'drug_or_consumable']
    """
    if raw is None:
        return "other"
    text, _ = _clean(str(raw))
    if _ITEM15.fullmatch(text):
        return "national"
    if _ITEM13.fullmatch(text):
        return "lost_zeros"
    if _PRICE9.fullmatch(text):
        return "price_code"
    if _WITH_SUFFIX.fullmatch(text):
        return "local_suffix"
    if re.fullmatch(r"[A-Z][0-9A-Z]{9,}", text):
        return "drug_or_consumable"
    return "other"


def item_code_forms(code: str) -> dict[str, str]:
    """A national 15-digit service-item code written in the forms real extracts use (for tests, the
    simulator's extract dialects and the rule conformance suite).

    >>> item_code_forms("001201000010000")["lost_zeros"]
    '1201000010000'
    """
    if not _ITEM15.fullmatch(code):
        raise ValueError(f"not a 15-digit national service-item code: {code!r}")
    fullwidth = "".join(chr(ord(ch) + 0xFEE0) for ch in code)
    return {"national": code, "lost_zeros": code[2:], "local_suffix": code + "-a", "fullwidth": fullwidth,
            "padded": f" {code} "}


class CodeMap:
    """Canonical forms of many codes of one kind, each worked out once (codes repeat millions of times).

    >>> m = CodeMap("list", known=["001201000010000"])
    >>> m("1201000010000"), m("001201000010000")
    ('001201000010000', '001201000010000')
    """

    # A long-running service sees codes from its callers: the cache stops growing at this size.
    MAX_CACHED = 200_000

    def __init__(self, kind: str, *, known: Iterable[str] | None = None):
        self.kind = kind
        self.known = frozenset(known or ())
        self._cache: dict[str | None, Canonical] = {}

    def get(self, raw: str | None) -> Canonical:
        c = self._cache.get(raw)
        if c is None:
            c = canonical(self.kind, raw, known=self.known)
            if len(self._cache) < self.MAX_CACHED:
                self._cache[raw] = c
        return c

    def __call__(self, raw: str | None) -> str | None:
        return self.get(raw).code


# -- private ----------------------------------------------------------------------------------------


def _clean(raw: str) -> tuple[str, list[str]]:
    """Full-width to ASCII, spaces removed, upper case; and which of these changed anything."""
    rewrites = []
    text = unicodedata.normalize("NFKC", raw)
    if text != raw:
        rewrites.append("fullwidth")
    spaced = _SPACE.sub("", text)
    if spaced != text:
        rewrites.append("padding")
    upper = spaced.upper()
    if upper != spaced:
        rewrites.append("case")
    return upper, rewrites


def _icd(text: str) -> str:
    """``J18900``, ``j18.9``, ``J18.900`` → ``J18.900``; the extension letter x lower case as in the national
    医保 version (``I10.x00``); a code that is not ICD-10 shaped is returned as cleaned."""
    match = _ICD.fullmatch(text)
    if not match:
        return text
    letter, digits, rest = match.groups()
    if not rest:
        return letter + digits
    rest = rest.lower()
    head = re.match(r"[0-9x]*", rest).group(0)
    if len(head) < 3:
        rest = head.ljust(3, "0") + rest[len(head):]
    return f"{letter}{digits}.{rest}"
