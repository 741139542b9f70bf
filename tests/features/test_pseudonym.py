"""Pseudonyms and masks: the SQL forms agree with the Python ones."""

from __future__ import annotations

import hashlib
import hmac

import duckdb
import pytest

from features.pseudonym import (
    certno_valid,
    certno_valid_sql,
    hmac_params,
    mask_certno,
    mask_certno_sql,
    mask_name,
    pseudonym_sql,
    pseudonymise,
)

from conftest import CERTNOS

IDS = [*CERTNOS.values(), "11010519491231002X", "11010519491231002x", " 110105194912310021 ", "1101051949",
       "ABCDEFGHIJKLMNOPQR", "", None]


def test_pseudonym_is_hmac_sha256_of_the_normalised_id():
    key = "k" * 70  # longer than a SHA-256 block: hashed first, as HMAC does
    expect = "P" + hmac.new(key.encode(), b"11010519491231002X", hashlib.sha256).hexdigest()[:32]
    assert pseudonymise(["11010519491231002x"], key) == [expect]
    assert pseudonymise([None, "  "], key) == [None, None]


@pytest.mark.parametrize("key", ["short", "k" * 64, "k" * 100, "密钥"])
def test_sql_pseudonym_matches_python(key):
    with duckdb.connect() as con:
        got = [con.execute(f"SELECT {pseudonym_sql('CAST($v AS VARCHAR)')}", {"v": v, **hmac_params(key)}).fetchone()[0]
               for v in IDS]
    assert got == pseudonymise(IDS, key)


def test_certno_check_digit_sql_matches_python():
    with duckdb.connect() as con:
        for v in IDS:
            if v is None:
                continue
            norm = v.strip().upper()
            (ok,) = con.execute(f"SELECT coalesce({certno_valid_sql('$v')}, false)", {"v": norm}).fetchone()
            assert ok == certno_valid(v), v
    assert all(certno_valid(c) for c in CERTNOS.values())
    assert not certno_valid("110105194912310021")


def test_masks_show_region_and_check_digit_only():
    assert mask_certno("11010519491231002X") == "110105***********X"
    assert mask_certno("123") == "***"
    assert mask_name("王小五") == "王**" and mask_name("李") == "李*"
    with duckdb.connect() as con:
        (m,) = con.execute(f"SELECT {mask_certno_sql('$v')}", {"v": "11010519491231002X"}).fetchone()
    assert m == mask_certno("11010519491231002X")
