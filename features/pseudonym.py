"""Pseudonyms and masks for personal data (个人信息): resident IDs (居民身份证号) and names.

The warehouse never holds a clear resident ID: ingest replaces ``certno`` by a keyed pseudonym, an
HMAC-SHA256 of the normalised ID under the deployment's secret key, so the same person gets the same
pseudonym in every extract while nobody without the key can recompute it from a guessed ID. Where a
value has to be shown (quarantine), it is masked to its first six digits (region) and its check digit.

The Python functions and the SQL builders compute the same thing; the ingest uses the SQL form so that
millions of rows are hashed inside DuckDB.

>>> certno_valid("11010519491231002X")
True
>>> certno_valid("110105194912310021")
False
>>> mask_certno("11010519491231002X")
'110105***********X'
>>> p = pseudonymise(["11010519491231002x", None], "secret")
>>> p[0] == pseudonymise(["11010519491231002X"], "secret")[0], p[0][:1], len(p[0]), p[1]
(True, 'P', 33, None)

The key is the deployment's secret: whoever has it can check a guessed resident ID against a pseudonym
(a person's region, birth date and sex leave a few hundred candidates), whoever has not cannot. So it is
generated (:func:`create_key_file`: 256 random bits, a file readable by its owner only) rather than
chosen, and the public development key is refused outside ``--dev`` by the commands that use it.

>>> import tempfile
>>> path = Path(tempfile.mkdtemp()) / "w.pseudonym.key"
>>> key = create_key_file(path)
>>> read_key_file(path) == key, oct(path.stat().st_mode & 0o777), len(key)
(True, '0o600', 64)
>>> key_check("secret") == key_check("secret") != key_check("other")
True
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "pseudonymise",
    "key_check",
    "create_key_file",
    "read_key_file",
    "KeyFileError",
    "certno_valid",
    "mask_certno",
    "mask_name",
    "hmac_params",
    "pseudonym_sql",
    "certno_valid_sql",
    "mask_certno_sql",
    "mask_name_sql",
]

PSEUDONYM_PREFIX = "P"
PSEUDONYM_HEX_CHARS = 32

# GB 11643 / ISO 7064 MOD 11-2: weights of the first 17 digits and the check character per remainder.
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"
_BLOCK = 64  # SHA-256 block size in bytes, for HMAC


def pseudonymise(values: Iterable[str | None], key: str) -> list[str | None]:
    """Keyed pseudonym of each resident ID: ``'P'`` + first 32 hex chars of HMAC-SHA256(key, ID).

    IDs are trimmed and upper-cased first (a lower-case ``x`` check digit is the same ID); empty values
    stay ``None``.
    """
    k = key.encode("utf-8")
    digest = hmac.digest
    out: list[str | None] = []
    for v in values:
        if v is None:
            out.append(None)
            continue
        norm = str(v).strip().upper()
        if not norm:
            out.append(None)
            continue
        out.append(PSEUDONYM_PREFIX + digest(k, norm.encode("utf-8"), "sha256").hex()[:PSEUDONYM_HEX_CHARS])
    return out


class KeyFileError(ValueError):
    """A key file that cannot be used: missing, empty, or readable by others than its owner."""


def key_check(key: str) -> str:
    """A check value of ``key`` (16 hex characters of an HMAC of a fixed text): tells whether two runs
    used the same key without holding it. It lets nobody check a resident ID: that needs the key."""
    return hmac.digest(key.encode("utf-8"), b"yibao:pseudonym-key-check", "sha256").hex()[:16]


def create_key_file(path: Path) -> str:
    """Write a new random key (64 hex characters, 256 bits) to ``path``, readable by its owner only
    (mode 0600, set as the file is created), and return it. Refuses to overwrite an existing file:
    a new key gives every person a new pseudonym."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key + "\n")
    return key


def read_key_file(path: Path) -> str:
    """The key in ``path``; :class:`KeyFileError` when it is missing, empty, or group/other may read it."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise KeyFileError(f"无法读取假名化密钥文件 (cannot read key file) {path}: {exc.strerror}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"假名化密钥文件 {path} 的权限过宽 ({oct(mode & 0o777)})：其他用户可读；"
                           f"请执行 chmod 600 {path} (key file readable by others)")
    if not text:
        raise KeyFileError(f"假名化密钥文件为空 (empty key file): {path}")
    return text


def certno_valid(certno: str | None) -> bool:
    """True for an 18-character resident ID whose check digit is right (ISO 7064 MOD 11-2)."""
    if certno is None:
        return False
    c = certno.strip().upper()
    if len(c) != 18 or not c[:17].isdigit() or not c[:17].isascii() or c[17] not in "0123456789X":
        return False
    total = sum(int(d) * w for d, w in zip(c[:17], _WEIGHTS))
    return _CHECK_CHARS[total % 11] == c[17]


def mask_certno(value: str | None) -> str | None:
    """Show only the first 6 characters (region code) and the last one; stars in between."""
    if value is None:
        return None
    v = str(value)
    if len(v) < 8:
        return "*" * len(v)
    return v[:6] + "*" * (len(v) - 7) + v[-1]


def mask_name(value: str | None) -> str | None:
    """Show only the first character of a name (the family name)."""
    if value is None:
        return None
    v = str(value)
    return v[:1] + "*" * max(len(v) - 1, 1) if v else v


def hmac_params(key: str) -> dict[str, bytes]:
    """Query parameters ``$hmac_ipad`` and ``$hmac_opad`` for :func:`pseudonym_sql`.

    Passing the padded key as parameters keeps it out of the SQL text (and so out of error messages).
    """
    k = key.encode("utf-8")
    if len(k) > _BLOCK:
        k = hashlib.sha256(k).digest()
    k = k.ljust(_BLOCK, b"\0")
    return {
        "hmac_ipad": bytes(b ^ 0x36 for b in k),
        "hmac_opad": bytes(b ^ 0x5C for b in k),
    }


def pseudonym_sql(expr: str) -> str:
    """DuckDB expression computing :func:`pseudonymise` of the VARCHAR ``expr`` (needs :func:`hmac_params`)."""
    norm = f"NULLIF(upper(trim({expr})), '')"
    inner = f"unhex(sha256($hmac_ipad || encode({norm})))"
    return f"('{PSEUDONYM_PREFIX}' || left(sha256($hmac_opad || {inner}), {PSEUDONYM_HEX_CHARS}))"


def certno_valid_sql(expr: str) -> str:
    """DuckDB condition: ``expr`` (already trimmed and upper-cased) is a valid 18-character resident ID."""
    weighted = " + ".join(f"(ord(substr({expr}, {i + 1}, 1)) - 48) * {w}" for i, w in enumerate(_WEIGHTS))
    return (
        f"(regexp_full_match({expr}, '[0-9]{{17}}[0-9X]') AND "
        f"substr('{_CHECK_CHARS}', (({weighted}) % 11) + 1, 1) = substr({expr}, 18, 1))"
    )


def mask_certno_sql(expr: str) -> str:
    """DuckDB expression computing :func:`mask_certno` of the VARCHAR ``expr``."""
    return (
        f"CASE WHEN length({expr}) >= 8 THEN left({expr}, 6) || repeat('*', length({expr}) - 7) "
        f"|| right({expr}, 1) ELSE repeat('*', length({expr})) END"
    )


def mask_name_sql(expr: str) -> str:
    """DuckDB expression computing :func:`mask_name` of the VARCHAR ``expr``."""
    return f"CASE WHEN {expr} = '' THEN {expr} ELSE left({expr}, 1) || repeat('*', greatest(length({expr}) - 1, 1)) END"
