"""The clue workflow (线索核查流程): states, their Chinese labels and the allowed transitions, as data.

A clue starts as ``new`` (新线索), is assigned (已分派) to an investigator who verifies it (核查中), and
ends confirmed (查实) or dismissed (排除). A confirmed clue may be transferred (移送) to public security
(公安), discipline inspection (纪检监察) or health authorities (卫生健康); every path ends closed (办结).

Which move is allowed is one table, :data:`TRANSITIONS`; what a move needs is another,
:data:`REQUIREMENTS`. Nothing else in the package decides either.

>>> allowed_targets("new")
('assigned', 'dismissed')
>>> STATES["confirmed"]
'查实'
>>> check_transition(7, "fixmedins:H001", "new", "closed")
Traceback (most recent call last):
...
serving.clues.workflow.IllegalTransition: 线索 #7 (fixmedins:H001) 不能从「新线索」转到「办结」; 允许: 已分派 assigned, 排除 dismissed / clue #7 (fixmedins:H001) cannot move from new to closed; allowed: assigned, dismissed
"""

from __future__ import annotations

__all__ = [
    "STATES",
    "TRANSITIONS",
    "REQUIREMENTS",
    "OPEN_STATES",
    "CLEARED_STATES",
    "TRANSFER_STATES",
    "OUTCOME_OF",
    "REFERRAL_OUTCOMES",
    "FINAL_REFERRAL_OUTCOMES",
    "CLOSE_NEEDS_REFERRAL_OUTCOME",
    "IllegalTransition",
    "UnknownState",
    "allowed_targets",
    "check_transition",
    "state_label",
]

# state id -> 中文 label, in workflow order.
STATES: dict[str, str] = {
    "new": "新线索",
    "assigned": "已分派",
    "verifying": "核查中",
    "confirmed": "查实",
    "dismissed": "排除",
    "transferred_police": "移送公安",
    "transferred_discipline": "移送纪检监察",
    "transferred_health": "移送卫生健康",
    "closed": "办结",
}

# from state -> the states it may move to. A dismissed clue may be reopened (new evidence, a report
# 举报); a closed clue is final. Reassigning a clue (e.g. for cross-checking 交叉检查) goes back through
# ``assigned``.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "new": ("assigned", "dismissed"),
    "assigned": ("verifying", "assigned", "dismissed"),
    "verifying": ("confirmed", "dismissed", "assigned"),
    "confirmed": ("transferred_police", "transferred_discipline", "transferred_health", "closed"),
    "dismissed": ("closed", "verifying"),
    "transferred_police": ("closed",),
    "transferred_discipline": ("closed",),
    "transferred_health": ("closed",),
    "closed": (),
}

# target state -> what the move must carry besides who/when.
REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "confirmed": ("confirmed_amount",),
    "dismissed": ("reason",),
    "assigned": ("assignee",),
}

# Not yet decided: the SLA clock runs on these.
OPEN_STATES: tuple[str, ...] = ("new", "assigned", "verifying")
TRANSFER_STATES: tuple[str, ...] = ("transferred_police", "transferred_discipline", "transferred_health")
# Off the list (清仓见底 counts these as cleared).
CLEARED_STATES: tuple[str, ...] = ("dismissed", *TRANSFER_STATES, "closed")
# Entering these states records the verification outcome that becomes a label.
OUTCOME_OF: dict[str, str] = {"confirmed": "confirmed", "dismissed": "dismissed"}

# 公安反馈: what public security did with a transferred clue, recorded by a liaison (公安联络员) with a date and
# a document number. 受理 is an intermediate step; the others are final: only after one of them may a clue
# transferred to public security be closed, and only then does it count as cleared (清仓见底).
REFERRAL_OUTCOMES: dict[str, str] = {"accepted": "受理", "filed": "立案", "not_filed": "不立案", "returned": "退回"}
FINAL_REFERRAL_OUTCOMES: tuple[str, ...] = ("filed", "not_filed", "returned")
# Transfer states whose closing waits for a final outcome (the ones with a liaison to report it).
CLOSE_NEEDS_REFERRAL_OUTCOME: tuple[str, ...] = ("transferred_police",)


class UnknownState(ValueError):
    """A state id that is not in :data:`STATES`."""


class IllegalTransition(ValueError):
    """A move that :data:`TRANSITIONS` does not allow, or that lacks what :data:`REQUIREMENTS` asks."""


def state_label(state: str) -> str:
    """``'查实 confirmed'``: the Chinese label and the id, as shown in errors and tables."""
    return f"{STATES.get(state, '?')} {state}"


def allowed_targets(state: str) -> tuple[str, ...]:
    """The states a clue in ``state`` may move to."""
    if state not in STATES:
        raise UnknownState(_unknown(state))
    return TRANSITIONS[state]


def check_transition(clue_id: int, clue_key: str, from_state: str, to_state: str, **given) -> None:
    """Raise :class:`IllegalTransition` unless ``from_state -> to_state`` is allowed and complete.

    ``given`` holds the values the caller supplied (``reason``, ``confirmed_amount``, ``assignee``);
    the ones :data:`REQUIREMENTS` names for ``to_state`` must be present and not empty. Closing a state of
    :data:`CLOSE_NEEDS_REFERRAL_OUTCOME` needs ``referral_outcome`` (the clue's latest 公安反馈) to be final.
    """
    if to_state not in STATES:
        raise UnknownState(_unknown(to_state))
    allowed = allowed_targets(from_state)
    who = f"#{clue_id} ({clue_key})"
    if to_state not in allowed:
        zh = ", ".join(state_label(s) for s in allowed) or "无 (终态)"
        en = ", ".join(allowed) or "none (final state)"
        raise IllegalTransition(
            f"线索 {who} 不能从「{STATES[from_state]}」转到「{STATES[to_state]}」; 允许: {zh} / "
            f"clue {who} cannot move from {from_state} to {to_state}; allowed: {en}"
        )
    if to_state == "closed" and from_state in CLOSE_NEEDS_REFERRAL_OUTCOME \
            and given.get("referral_outcome") not in FINAL_REFERRAL_OUTCOMES:
        now = REFERRAL_OUTCOMES.get(given.get("referral_outcome") or "", "尚无反馈")
        final = "/".join(REFERRAL_OUTCOMES[o] for o in FINAL_REFERRAL_OUTCOMES)
        raise IllegalTransition(
            f"线索 {who} 已移送公安, 须登记公安最终反馈 ({final}) 后才能办结; 当前: {now} / "
            f"clue {who} was transferred to public security and can be closed only after a final outcome "
            f"({', '.join(FINAL_REFERRAL_OUTCOMES)}) is recorded; now: {given.get('referral_outcome') or 'none'}"
        )
    missing = [r for r in REQUIREMENTS.get(to_state, ()) if given.get(r) in (None, "")]
    if missing:
        zh = {"confirmed_amount": "查实金额", "reason": "理由", "assignee": "承办人"}
        raise IllegalTransition(
            f"线索 {who} 转到「{STATES[to_state]}」需要填写 {', '.join(zh[m] for m in missing)} / "
            f"clue {who} needs {', '.join(missing)} to move to {to_state}"
        )


def _unknown(state: str) -> str:
    return f"未知状态 (unknown state) {state!r}; 可用 (known): {', '.join(STATES)}"
