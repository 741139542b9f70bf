"""The clue store and investigator workflow (线索库与核查流程).

The screening job writes clues with :meth:`ClueStore.upsert_clues`; the service and the ``yibao clues``
commands read and move them. See ``docs/clues.md``.
"""

from serving.clues.access import AccessDenied, User, mask_id
from serving.clues.store import (
    SYSTEM,
    ClueInputError,
    ClueNotFound,
    ClueStore,
    UpsertCounts,
    UserError,
    open_store,
    store_for,
)
from serving.clues.workflow import STATES, TRANSITIONS, IllegalTransition, UnknownState

__all__ = [
    "ClueStore",
    "open_store",
    "store_for",
    "User",
    "SYSTEM",
    "UpsertCounts",
    "AccessDenied",
    "ClueNotFound",
    "ClueInputError",
    "UserError",
    "IllegalTransition",
    "UnknownState",
    "STATES",
    "TRANSITIONS",
    "mask_id",
]
