"""Re-identification from the warehouse alone (issue 20): the attack that re-identified 200 of 200 persons.

The attacker holds the warehouse file and nothing else. For each person of ``psn_info`` the region, birth
date and sex fix 17 digits of the resident ID but the 3-digit sequence number, whose parity is the sex:
500 candidates, each completed by its check digit. A candidate is confirmed by recomputing the keyed
pseudonym and comparing it with ``psn_info.certno``. With the key (the public development key, or a leaked
one) that confirms every person; with the key unknown no candidate can be confirmed, so the warehouse
alone re-identifies nobody.
"""

from __future__ import annotations

import hmac
import json
from types import SimpleNamespace

import duckdb
import pytest

from features.config import DEV_PSEUDONYM_KEY, Settings
from features.ingest import ingest, list_quarantine
from features.pseudonym import PSEUDONYM_HEX_CHARS, PSEUDONYM_PREFIX, create_key_file, key_check

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> SimpleNamespace:
    """200 simulated persons (as in the issue) ingested with a key generated for this installation."""
    from training.simulator import simulate

    base = tmp_path_factory.mktemp("reid")
    simulate("tiny", seed=3, out=base / "region", n_persons=200)
    settings = Settings(warehouse=base / "warehouse.duckdb")
    key = create_key_file(settings.default_key_file)
    settings = Settings(warehouse=settings.warehouse, pseudonym_key=key)
    report = ingest(base / "region", settings)
    assert report.ok
    return SimpleNamespace(settings=settings, key=key, report=report)


def attack(warehouse, key: str) -> tuple[int, int, int]:
    """(persons, persons re-identified, candidates tried) of the brute force above, with ``key``."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        persons = con.execute("SELECT gend, strftime(brdy, '%Y%m%d'), insu_admdvs, certno FROM psn_info "
                              "WHERE certno IS NOT NULL").fetchall()
    k, found, tried = key.encode(), 0, 0
    for gend, ymd, region, pseudonym in persons:
        prefix = region + ymd
        for seq in range(1 if gend == "1" else 0, 1000, 2):  # odd sequence numbers are men
            body = f"{prefix}{seq:03d}"
            candidate = body + "10X98765432"[sum(int(d) * w for d, w in zip(body, _WEIGHTS)) % 11]
            tried += 1
            digest = hmac.digest(k, candidate.encode(), "sha256").hex()[:PSEUDONYM_HEX_CHARS]
            if PSEUDONYM_PREFIX + digest == pseudonym:
                found += 1
                break
    return len(persons), found, tried


def test_the_attack_of_the_issue_works_when_the_key_is_known(made):
    # The control: the fields left in the warehouse do narrow each person down to 500 candidates, and
    # whoever holds the key confirms the right one. This is what the public development key allowed.
    persons, found, tried = attack(made.settings.warehouse, made.key)
    assert persons == 200 and found == 200
    assert tried <= 500 * persons


def test_with_the_key_unknown_nobody_is_reidentified(made):
    guesses = [DEV_PSEUDONYM_KEY, "", "secret", "yibao", "changeme", made.key[:32], made.key.upper()]
    for guess in guesses:
        persons, found, tried = attack(made.settings.warehouse, guess)
        assert (persons, found) == (200, 0), guess
        assert tried == 500 * persons  # every candidate tried, none confirmed


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
