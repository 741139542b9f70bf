"""Redaction (脱敏) of an evidence package: who appears under which name.

Every package gives each person a stable pseudonym ``P001``, ``P002`` ... by sorted person number
(psn_no), the same in every file of the package. A package is **pseudonymised** unless it is a case
transferred to public security (移送公安) exported by a public-security liaison (公安联络员): then it is
**clear** and also carries each person's psn_no, name and resident ID from the identity vault. A
pseudonymised package holds no psn_no, resident ID or name at all: free texts (reasons, rule-hit
messages) have every psn_no of the case replaced by its pseudonym and every resident ID masked.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from serving.clues.access import mask_id

__all__ = ["Redactor", "clear_allowed", "read_identities"]

_LONG_DIGITS = re.compile(r"\d{6,}")


def clear_allowed(clue: dict, role: str) -> bool:
    """Whether a package of ``clue`` exported by a user of ``role`` may hold clear identities.

    Only liaisons, and only for a case transferred to public security: state ``transferred_police``, or
    ``closed`` after such a transfer (the cases a liaison can see at all).
    """
    if role != "liaison":
        return False
    if clue.get("state") == "transferred_police":
        return True
    return clue.get("state") == "closed" and any(t.get("to_state") == "transferred_police"
                                                 for t in clue.get("transitions") or [])


def read_identities(vault: Path | None, persons: list[str]) -> dict[str, dict]:
    """``psn_no -> {certno, psn_name}`` from the identity vault (身份库) for ``persons``."""
    if not persons:
        return {}
    if vault is None or not Path(vault).is_file():
        raise FileNotFoundError(f"身份库不存在 (identity vault not found): {vault}")
    with duckdb.connect(str(vault), read_only=True) as con:
        rows = con.execute("SELECT psn_no, certno, psn_name FROM psn_identity WHERE psn_no IN (SELECT unnest($p))",
                           {"p": persons}).fetchall()
    return {p: {"certno": c or "", "psn_name": n or ""} for p, c, n in rows}


class Redactor:
    """Names persons in one package: pseudonyms always, clear identities only when ``clear``."""

    def __init__(self, persons: list[str], *, clear: bool = False, identities: dict[str, dict] | None = None):
        ordered = sorted(dict.fromkeys(str(p) for p in persons))
        width = max(3, len(str(len(ordered))))
        self.alias = {p: f"P{i:0{width}d}" for i, p in enumerate(ordered, start=1)}
        self.clear = clear
        self.identities = (identities or {}) if clear else {}

    @property
    def mode(self) -> str:
        return "clear" if self.clear else "pseudonymised"

    def person(self, psn_no: str | None) -> str:
        """The id a person has in this package: psn_no when clear, else the pseudonym."""
        if psn_no is None or psn_no == "":
            return ""
        psn_no = str(psn_no)
        if self.clear:
            return psn_no
        if psn_no not in self.alias:  # a person outside the case graph and settlements: still never in clear
            self.alias[psn_no] = f"P{len(self.alias) + 1:03d}"
        return self.alias[psn_no]

    def node_key(self, key: str) -> str:
        t, _, code = key.partition(":")
        return f"psn:{self.person(code)}" if t == "psn" else key

    def name(self, psn_no: str) -> str:
        return self.identities.get(str(psn_no), {}).get("psn_name", "") if self.clear else ""

    def certno(self, psn_no: str) -> str:
        return self.identities.get(str(psn_no), {}).get("certno", "") if self.clear else ""

    def text(self, value) -> str:
        """Free text with person numbers replaced by pseudonyms (unless clear) and resident IDs masked."""
        if value is None:
            return ""
        s = str(value)
        if not self.clear:
            s = _LONG_DIGITS.sub(lambda m: self.alias.get(m.group(0), m.group(0)), s)
            s = mask_id(s) or ""
        return s
