"""The workflow table, the access rules and the ID mask, without a database; the modules' doctests."""

from __future__ import annotations

import doctest
import importlib
from itertools import product

import pytest

from features.config import load_settings
from serving.clues.access import PERMISSIONS, User, allowed, contains_resident_id, mask_id
from serving.clues.models import ROLES
from serving.clues.workflow import (
    CLEARED_STATES,
    FINAL_REFERRAL_OUTCOMES,
    OPEN_STATES,
    REFERRAL_OUTCOMES,
    REQUIREMENTS,
    STATES,
    TRANSITIONS,
    IllegalTransition,
    UnknownState,
    check_transition,
)

FULL = {"reason": "理由", "confirmed_amount": 1.0, "assignee": "li", "referral_outcome": "filed"}


@pytest.mark.parametrize("module", ["serving.clues.workflow", "serving.clues.access", "serving.clues.store",
                                    "features.config"])
def test_docstring_examples(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


def test_transition_table_is_the_only_judge():
    assert set(TRANSITIONS) == set(STATES) and all(set(t) <= set(STATES) for t in TRANSITIONS.values())
    for a, b in product(STATES, STATES):
        if b in TRANSITIONS[a]:
            check_transition(1, "psn:P1", a, b, **FULL)
        else:
            with pytest.raises(IllegalTransition, match=f"cannot move from {a} to {b}"):
                check_transition(1, "psn:P1", a, b, **FULL)
    assert TRANSITIONS["closed"] == () and set(OPEN_STATES) | set(CLEARED_STATES) | {"confirmed"} == set(STATES)


def test_a_case_transferred_to_police_closes_only_on_a_final_outcome():
    for outcome in (None, "accepted"):
        with pytest.raises(IllegalTransition, match="only after a final outcome"):
            check_transition(5, "psn:P1", "transferred_police", "closed", **(FULL | {"referral_outcome": outcome}))
    for outcome in FINAL_REFERRAL_OUTCOMES:
        check_transition(5, "psn:P1", "transferred_police", "closed", **(FULL | {"referral_outcome": outcome}))
    assert [REFERRAL_OUTCOMES[o] for o in FINAL_REFERRAL_OUTCOMES] == ["立案", "不立案", "退回"]
    check_transition(5, "psn:P1", "transferred_health", "closed", **(FULL | {"referral_outcome": None}))


def test_every_state_is_reachable_from_new_and_reaches_closed():
    def reach(start):
        seen, todo = {start}, [start]
        while todo:
            for n in TRANSITIONS[todo.pop()]:
                if n not in seen:
                    seen.add(n)
                    todo.append(n)
        return seen

    assert reach("new") == set(STATES)
    assert all("closed" in reach(s) for s in STATES)


@pytest.mark.parametrize("target", sorted(REQUIREMENTS))
def test_requirements_are_enforced(target):
    source = next(s for s, t in TRANSITIONS.items() if target in t)
    for missing in REQUIREMENTS[target]:
        with pytest.raises(IllegalTransition, match=f"needs {missing}"):
            check_transition(3, "ring:R1", source, target, **(FULL | {missing: None}))


def test_unknown_states_are_named():
    with pytest.raises(UnknownState, match="'done'"):
        check_transition(1, "psn:P1", "new", "done")
    with pytest.raises(UnknownState):
        check_transition(1, "psn:P1", "limbo", "new")


def test_permissions_by_role():
    may = {role: sorted(a for a in PERMISSIONS if allowed(a, User("u", role))) for role in ROLES}
    assert "transition" not in may["analyst"] and "transition" not in may["liaison"]
    assert "comment" not in may["liaison"] and "comment" in may["investigator"]
    assert "resolve_identity" in may["liaison"] and "resolve_identity" in may["admin"]
    assert "resolve_identity" not in may["analyst"] and "resolve_identity" not in may["investigator"]
    assert may["admin"] == sorted(PERMISSIONS)


@pytest.mark.parametrize("text, masked", [
    ("11010519491231002X", "110105***********X"),
    ("身份证号11010519491231002x。", "身份证号110105***********x。"),
    ("old id 110105491231002 here", "old id 110105********2 here"),
    ("220100000000001234", "220100000000001234"),  # a simulator person number: no birth date inside
    ("setl 1101051949123100211", "setl 1101051949123100211"),  # 19 digits: not an ID
    ("金额 12345.67 元", "金额 12345.67 元"),
    (None, None),
])
def test_mask_id(text, masked):
    assert mask_id(text) == masked
    assert contains_resident_id(text) == (text != masked)


def test_clue_store_settings(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    s = load_settings(warehouse=tmp_path / "w" / "wh.duckdb")
    assert s.clue_db_url == f"sqlite:///{tmp_path / 'w' / 'clues.db'}" and s.clue_sla_days == 30
    monkeypatch.setenv("YIBAO_CLUE_DB", "postgresql+psycopg://u@db/clues")
    monkeypatch.setenv("YIBAO_CLUE_SLA_DAYS", "15")
    s = load_settings()
    assert s.clue_db_url == "postgresql+psycopg://u@db/clues" and s.clue_sla_days == 15
    monkeypatch.setenv("YIBAO_CLUE_SLA_DAYS", "a month")
    with pytest.raises(ValueError, match="clue_sla_days"):
        load_settings()
