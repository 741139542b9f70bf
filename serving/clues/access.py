"""Who may see and do what in the clue store (访问控制): the one place the access rules live.

Roles: analyst (分析员) and admin (管理员) see every clue; an investigator (核查人员) sees the clues of
their region (the clue's admdvs code starts with the user's region prefix) and the clues assigned to
them (cross-checking 交叉检查 hands a clue to another region); a public-security liaison (公安联络员)
sees only the clues transferred to public security (移送公安), including those later closed, and only in
their region when they have one. Only investigators and admins move clues through the workflow; a
liaison may not comment, but records what public security did with a transferred clue (公安反馈). Clear resident IDs (居民身份证号) come out of the identity vault only for an
admin, or for a liaison on a clue transferred to public security.

Resident IDs never enter the store: :func:`mask_id` hides any that appear in free text.

>>> mask_id("举报人称 11010519491231002X 冒用")
'举报人称 110105***********X 冒用'
>>> mask_id("psn 220100000000001234 is a person number, not an ID")
'psn 220100000000001234 is a person number, not an ID'
>>> mask_id("全角 １１０１０５１９４９１２３１００２Ｘ 也是")
'全角 110105***********X 也是'
>>> allowed("transition", User("li", "liaison"))
False
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date

from sqlalchemy import ColumnElement, and_, exists, false, or_, select, true

from features.pseudonym import mask_certno
from serving.clues.models import ROLES, Clue, ClueTransition

__all__ = [
    "User",
    "PERMISSIONS",
    "AccessDenied",
    "allowed",
    "require",
    "visible",
    "may_resolve_identity",
    "mask_id",
    "contains_resident_id",
]


@dataclass(frozen=True)
class User:
    """Someone acting on the store: a username, a role from ``ROLES`` and a region prefix ('' = all)."""

    username: str
    role: str
    region: str = ""


# action -> roles allowed to do it (on a clue they can see, for clue actions).
PERMISSIONS: dict[str, frozenset[str]] = {
    "list": frozenset(ROLES),
    "read_detail": frozenset(ROLES),
    "statistics": frozenset(ROLES),
    "transition": frozenset({"investigator", "admin"}),
    "comment": frozenset({"analyst", "investigator", "admin"}),
    "overdue": frozenset({"analyst", "investigator", "admin"}),
    "export_labels": frozenset({"analyst", "admin"}),
    "manage_users": frozenset({"admin"}),
    "resolve_identity": frozenset({"admin", "liaison"}),
    # 公安反馈 on a clue transferred to public security: the liaison, or the investigator the liaison told
    "record_outcome": frozenset({"admin", "liaison", "investigator"}),
}


class AccessDenied(PermissionError):
    """The user's role may not do this."""


def allowed(action: str, user: User) -> bool:
    """Whether ``user``'s role may do ``action`` at all (see :data:`PERMISSIONS`)."""
    return user.role in PERMISSIONS[action]


def require(action: str, user: User) -> None:
    """Raise :class:`AccessDenied` unless ``user``'s role may do ``action``."""
    if not allowed(action, user):
        zh = ROLES.get(user.role, user.role)
        raise AccessDenied(f"用户 {user.username} ({zh}) 无权执行 {action} / "
                           f"user {user.username} (role {user.role}) may not {action}")


def visible(user: User) -> ColumnElement[bool]:
    """SQL condition on :class:`Clue` that holds for the clues ``user`` may see."""
    if user.role in ("analyst", "admin"):
        return true()
    in_region = Clue.region.startswith(user.region, autoescape=True) if user.region else true()
    if user.role == "investigator":
        return or_(in_region, Clue.assignee == user.username) if user.region else false()
    if user.role == "liaison":
        sent_to_police = exists(select(ClueTransition.id).where(ClueTransition.clue_id == Clue.id,
                                                                ClueTransition.to_state == "transferred_police"))
        return and_(in_region, or_(Clue.state == "transferred_police", and_(Clue.state == "closed", sent_to_police)))
    return false()


def may_resolve_identity(user: User) -> bool:
    """Whether ``user`` may see clear resident IDs of a clue they can see (liaisons see only police cases)."""
    return allowed("resolve_identity", user)


def mask_id(text: str | None) -> str | None:
    """``text`` with every resident ID (18 or 15 characters with a valid birth date) masked.

    The mask is the project's one (:func:`features.pseudonym.mask_certno`): the first six digits (the
    region) and the check character stay. IDs typed with full-width digits (全角 ``１１０１…Ｘ``, as
    Chinese input methods produce them) are found too and masked in ASCII. Person numbers (psn_no) and
    other long codes whose digits do not hold a birth date are left alone.
    """
    if text is None:
        return None
    return _ID_PATTERN.sub(_mask_match, str(text))


def contains_resident_id(text: str | None) -> bool:
    """Whether :func:`mask_id` would change ``text``."""
    return text is not None and mask_id(text) != str(text)


# -- private ----------------------------------------------------------------------------------------

# ASCII or full-width (U+FF10..FF19) digits, check character X/x/Ｘ/ｘ; not inside a longer code.
_D = "0-9\uff10-\uff19"
_ID_PATTERN = re.compile(rf"(?<![{_D}A-Za-z\uff21-\uff3a\uff41-\uff5a])"
                         rf"(?:[1-9\uff11-\uff19][{_D}]{{16}}[{_D}Xx\uff38\uff58]|[1-9\uff11-\uff19][{_D}]{{14}})"
                         rf"(?![{_D}A-Za-z\uff21-\uff3a\uff41-\uff5a])")


def _mask_match(m: re.Match) -> str:
    value = unicodedata.normalize("NFKC", m.group(0))  # full-width digits and Ｘ become ASCII
    return mask_certno(value) if _has_birth_date(value) else m.group(0)


def _has_birth_date(value: str) -> bool:
    if len(value) == 18:
        y, m, d = int(value[6:10]), int(value[10:12]), int(value[12:14])
        if not 1900 <= y <= 2100:
            return False
    else:  # the 15-digit IDs issued before 1999 carry a two-digit year
        y, m, d = 1900 + int(value[6:8]), int(value[8:10]), int(value[10:12])
    try:
        date(y, m, d)
    except ValueError:
        return False
    return True
