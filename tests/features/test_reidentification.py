"""Re-identification from the warehouse alone (issue 20): the attack that re-identified 200 of 200 persons.

The attacker holds the warehouse file and nothing else. Before, ``psn_info`` kept each person's region,
exact birth date and sex, which fix 17 digits of the resident ID but the 3-digit sequence number (whose
parity is the sex): 500 candidates, each completed by its check digit. Now the warehouse keeps the birth
*year* (the exact date is in the identity vault only), so each person has 365 × 500 = 182,500 candidates.
A candidate is confirmed by recomputing the keyed pseudonym and comparing it with ``psn_info.certno``.
With the key (the public development key, or a leaked one) that still confirms every person, at 365 times
the cost; with the key unknown no candidate can be confirmed, so the warehouse alone re-identifies nobody.

The second attack is linkage: someone who knows a person's birth date, sex and district (a neighbour, an
outside register) looks for that person's rows. Before, those fields singled out nearly everyone of the
simulated region; now the warehouse offers every person of the same birth year, sex and district.
"""

from __future__ import annotations

import hmac
import json
import shutil
import statistics
from datetime import date, timedelta
from types import SimpleNamespace

import duckdb
import pandas as pd
import pytest

from features.config import DEV_PSEUDONYM_KEY, Settings
from features.ingest import ingest, list_quarantine
from features.pseudonym import PSEUDONYM_HEX_CHARS, PSEUDONYM_PREFIX, create_key_file, key_check

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
# Persons the brute force is run for: 182,500 HMACs each (about half a second in Python).
_SAMPLE = 3


@pytest.fixture(scope="module")
def made(tiny_region, tmp_path_factory) -> SimpleNamespace:
    """The persons of the tiny simulated region (2,000, two districts) ingested with a key generated for
    this installation; the simulator's clear register beside them."""
    base = tmp_path_factory.mktemp("reid")
    source = base / "region"
    source.mkdir()
    shutil.copytree(tiny_region / "psn_info", source / "psn_info")
    settings = Settings(warehouse=base / "warehouse.duckdb")
    key = create_key_file(settings.default_key_file)
    settings = Settings(warehouse=settings.warehouse, pseudonym_key=key)
    report = ingest(source, settings)
    assert report.table("psn_info").loaded == report.table("psn_info").rows_in > 1000
    register = pd.read_parquet(tiny_region / "psn_info")
    return SimpleNamespace(settings=settings, key=key, report=report, register=register)


def attack(warehouse, key: str, *, persons: int = _SAMPLE) -> tuple[int, int, int]:
    """(persons, persons re-identified, candidates tried) of the brute force above, with ``key``, for the
    first ``persons`` persons of ``psn_info``."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute("SELECT gend, birth_year, insu_admdvs, certno FROM psn_info WHERE certno IS NOT NULL "
                           "ORDER BY psn_no LIMIT ?", [persons]).fetchall()
    k, found, tried = key.encode(), 0, 0
    for gend, year, region, pseudonym in rows:
        hit = False
        day = date(year, 1, 1)
        while day.year == year and not hit:
            prefix = region + day.strftime("%Y%m%d")
            head = sum(int(d) * w for d, w in zip(prefix, _WEIGHTS))
            for seq in range(1 if gend == "1" else 0, 1000, 2):  # odd sequence numbers are men
                s = f"{seq:03d}"
                total = head + int(s[0]) * 8 + int(s[1]) * 4 + int(s[2]) * 2
                candidate = prefix + s + "10X98765432"[total % 11]
                tried += 1
                if PSEUDONYM_PREFIX + hmac.digest(k, candidate.encode(), "sha256").hex()[:PSEUDONYM_HEX_CHARS] == pseudonym:
                    hit = True
                    break
            day += timedelta(days=1)
        found += hit
    return len(rows), found, tried


def test_the_attack_of_the_issue_works_when_the_key_is_known(made):
    # The control: the key confirms the right candidate, as the public development key allowed. Without
    # the birth date the search covers the whole birth year: up to 365 × 500 candidates a person.
    persons, found, tried = attack(made.settings.warehouse, made.key)
    assert persons == found == _SAMPLE
    assert 500 * persons < tried <= 365 * 500 * persons


def test_with_the_key_unknown_nobody_is_reidentified(made):
    guesses = [DEV_PSEUDONYM_KEY, "", "secret", made.key[:32], made.key.upper()]
    for guess in guesses:
        persons, found, tried = attack(made.settings.warehouse, guess)
        assert (persons, found) == (_SAMPLE, 0), guess
        with duckdb.connect(str(made.settings.warehouse), read_only=True) as con:
            leap = con.execute("SELECT count(*) FILTER (WHERE (birth_year % 4 = 0 AND birth_year % 100 <> 0) "
                               "OR birth_year % 400 = 0) FROM (SELECT birth_year FROM psn_info "
                               "WHERE certno IS NOT NULL ORDER BY psn_no LIMIT ?)", [_SAMPLE]).fetchone()[0]
        assert tried == 500 * (365 * persons + leap)  # every candidate of the birth year tried, none confirmed


def test_no_exact_birth_date_in_the_warehouse_the_vault_has_it(made):
    with duckdb.connect(str(made.settings.warehouse), read_only=True) as con:
        dates = con.execute("SELECT schema_name, table_name, column_name FROM duckdb_columns() WHERE data_type = 'DATE' "
                            "AND (column_name ILIKE '%brdy%' OR column_name ILIKE '%birth%')").fetchall()
        psn_columns = [r[0] for r in con.execute("DESCRIBE psn_info").fetchall()]
        setl_columns = [r[0] for r in con.execute("DESCRIBE setl_d").fetchall()]
        years = dict(con.execute("SELECT psn_no, birth_year FROM psn_info").fetchall())
        # every DATE column of every table, against the persons' birth dates
        date_columns = con.execute("SELECT schema_name, table_name, column_name FROM duckdb_columns() "
                                   "WHERE data_type = 'DATE' AND database_name = current_database()").fetchall()
    assert dates == []
    assert "brdy" not in psn_columns and "birth_year" in psn_columns
    assert not {"brdy", "age"} & set(setl_columns) and "birth_year" in setl_columns
    with duckdb.connect(str(made.settings.identity_vault), read_only=True) as vault:
        exact = dict(vault.execute("SELECT psn_no, brdy FROM psn_identity").fetchall())
    truth = dict(zip(made.register["psn_no"], pd.to_datetime(made.register["brdy"]).dt.date))
    assert exact == truth
    assert all(years[p] == d.year for p, d in truth.items())
    with duckdb.connect(str(made.settings.warehouse), read_only=True) as con:
        con.execute("CREATE TEMP TABLE birth AS SELECT * FROM (VALUES " + ", ".join(
            f"('{p}', DATE '{d}')" for p, d in truth.items()) + ") t(psn_no, brdy)")
        for schema, table, column in date_columns:
            has_psn = con.execute("SELECT 1 FROM duckdb_columns() WHERE schema_name = ? AND table_name = ? "
                                  "AND column_name = 'psn_no'", [schema, table]).fetchall()
            if has_psn:
                (n,) = con.execute(f'SELECT count(*) FROM "{schema}"."{table}" t JOIN birth b '
                                   f'ON b.psn_no = t.psn_no AND b.brdy = t."{column}"').fetchone()
                assert n == 0, (schema, table, column)


def test_linkage_on_birth_year_sex_and_district_cannot_single_out_a_person(made):
    """k-anonymity (how many persons share a person's linking fields), before and after.

    The simulated tiny region has 2,000 persons, ~1,900 insured in its 2 districts: spread over ~90 birth
    years and 2 sexes that is ~5 persons per (birth year, sex, district), so the median person is in a group
    of at least 5 (the size below which statistical offices and health-data guidance suppress a cell), and
    a person of the region is alone only in a sparse year (the oldest). A real district of 300,000 insured
    gives ~1,700 a group, against ~5 on the exact birth date. Left weak: persons insured elsewhere (异地参保,
    ~5 % here, a few per other district) are still mostly alone in their group: their district is rare."""
    reg = made.register.assign(brdy=pd.to_datetime(made.register["brdy"]).dt.date)
    before = reg.groupby(["brdy", "gend", "insu_admdvs"])["psn_no"].transform("size")
    with duckdb.connect(str(made.settings.warehouse), read_only=True) as con:
        wh = con.execute("SELECT psn_no, insu_admdvs, count(*) OVER (PARTITION BY birth_year, gend, insu_admdvs) AS k "
                         "FROM psn_info").df()
    city = wh["insu_admdvs"].str[:4].mode()[0]  # the pooling region's own districts
    home = wh["insu_admdvs"].str[:4] == city
    after = wh["k"]
    unique_before, unique_after, unique_home = (before == 1).mean(), (after == 1).mean(), (after[home] == 1).mean()
    print(f"k-anonymity, {len(reg)} persons: on (birth date, sex, district) median {statistics.median(before)}, "
          f"{unique_before:.1%} unique; on (birth year, sex, district) median {statistics.median(after)}, "
          f"{unique_after:.1%} unique ({unique_home:.1%} of the {home.sum()} insured in the region)")
    assert unique_before > 0.9  # the old warehouse singled out nearly everyone
    assert statistics.median(after) >= 5
    assert unique_home < 0.05 and unique_after < 0.1
    assert set(wh["psn_no"]) == set(reg["psn_no"])


def test_the_key_appears_nowhere_it_could_leak(made, tmp_path):
    key = made.key
    files = [made.settings.warehouse, made.settings.identity_vault]
    assert all(key.encode() not in f.read_bytes() for f in files)
    with duckdb.connect(str(made.settings.warehouse), read_only=True) as con:
        logged = con.execute("SELECT string_agg(report, ''), string_agg(key_check, '') FROM ingest_log").fetchone()
    assert key not in logged[0] and logged[1] == key_check(key) and key_check(key) not in key
    assert key not in json.dumps(made.report.to_dict(), ensure_ascii=False)
    assert key not in repr(made.settings)
    assert key not in list_quarantine(made.settings.warehouse, limit=None).to_string()
    # An error naming a key problem does not name the key.
    from features.ingest import IngestError

    with pytest.raises(IngestError) as err:
        ingest(made.settings.warehouse.parent / "region", Settings(warehouse=made.settings.warehouse,
                                                                    pseudonym_key="not-" + key))
    assert key not in str(err.value)
