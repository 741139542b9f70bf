"""The clue store (线索库) and the investigator workflow on it.

The screening job writes clues with :meth:`ClueStore.upsert_clues`, one per entity (``clue_key =
entity_type:entity_id``): a re-run refreshes scores, reasons and evidence of the clues it finds again and
never touches their workflow state; clues it no longer finds stay. Investigators list, read, move and
comment clues; every read of a list or a detail and every change is written to the append-only audit
log (审计日志) in the same transaction. Who may see and do what is decided in
:mod:`serving.clues.access` only.

A transition or comment may carry an idempotency key (the service's ``Idempotency-Key`` header): the
first answer is stored with the change, in the same transaction, and a retry with the same key gets
that answer back without acting again. Background jobs (evidence packages, :mod:`serving.jobs`) are
rows of ``job``: who asked, which process runs it, its state and result.

SQLite by default (one file next to the warehouse), PostgreSQL by URL (``postgresql+psycopg://...``);
:func:`open_store` migrates the schema to the newest revision first.

>>> from serving.clues.access import User
>>> store = open_store("sqlite://")
>>> store.upsert_clues("run-1", [{"entity_type": "fixmedins", "entity_id": "H001", "region": "220102",
...     "p_fraud": 0.9, "amount_at_risk": 50000.0, "typologies": ["fake_treatment"], "sources": ["model"]}])
UpsertCounts(new=1, updated=0, unchanged=0)
>>> boss = User("wang", "admin")
>>> store.transition(1, "assigned", boss, assignee="wang")["state_zh"]
'已分派'
>>> store.transition(1, "confirmed", boss, confirmed_amount=1.0)
Traceback (most recent call last):
...
serving.clues.workflow.IllegalTransition: 线索 #1 (fixmedins:H001) 不能从「已分派」转到「查实」; 允许: 核查中 verifying, 已分派 assigned, 排除 dismissed / clue #1 (fixmedins:H001) cannot move from assigned to confirmed; allowed: verifying, assigned, dismissed
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import secrets
import socket
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Text, case, cast, create_engine, delete, event, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from features.config import Settings
from features.contract import FRAUD_TYPES, region_name
from models.ranking import risk_level
from serving.clues import access
from serving.clues.access import AccessDenied, User, mask_id
from serving.clues.attachments import ATTACHMENT_KINDS, checked_attachment
from serving.clues.models import (
    CLUE_ENTITY_TYPES,
    CLUE_SOURCES,
    RISK_LEVELS,
    ROLES,
    JOB_STATES,
    AuditLog,
    ClueAttachment,
    Clue,
    ClueComment,
    ClueTransition,
    IdempotencyKey,
    Job,
    ScreeningRun,
    UserAccount,
)
from serving.clues.workflow import (
    CLEARED_STATES,
    CLOSE_NEEDS_REFERRAL_OUTCOME,
    FINAL_REFERRAL_OUTCOMES,
    REFERRAL_OUTCOMES,
    OPEN_STATES,
    OUTCOME_OF,
    STATES,
    TRANSFER_STATES,
    IllegalTransition,
    UnknownState,
    allowed_targets,
    check_transition,
)

__all__ = [
    "ClueStore",
    "open_store",
    "store_for",
    "migrate",
    "UpsertCounts",
    "ClueNotFound",
    "AttachmentCorrupted",
    "ClueInputError",
    "UserError",
    "IdempotencyConflict",
    "Replayed",
    "JobNotFound",
    "TooManyJobs",
    "StoreBusy",
    "SYSTEM",
    "MAX_AMOUNT",
    "IDEMPOTENCY_DAYS",
    "AGE_BANDS",
    "SORTS",
    "SORT_ORDERS",
    "LIST_FILTERS",
    "MAX_EXPORT_ROWS",
    "MAX_BULK",
    "LABEL_ENTITY_TYPE",
]

# The actor of writes that no person makes (the screening job, the terminal at setup).
SYSTEM = User("system", "admin")
# Age of a clue in days since it was first raised: (label, lowest day, highest day or None).
AGE_BANDS: tuple[tuple[str, int, int | None], ...] = (("0-7", 0, 7), ("8-30", 8, 30), ("31-90", 31, 90),
                                                      (">90", 91, None))
# sort id -> (中文 label of its natural order, column, natural order). ``order`` asc/desc reverses it.
SORTS = {"priority": "优先级从高到低", "age": "最早的在前", "amount": "涉及金额从高到低", "p_fraud": "欺诈概率从高到低",
         "due": "核查期限最近的在前", "region": "地区代码", "state": "流程顺序", "assignee": "承办人", "id": "编号"}
SORT_ORDERS = {"asc": "升序", "desc": "降序"}
# The filters of the clue list, the statistics and the Excel export (one set: what the list shows, the
# statistics count and the export holds are the same clues).
LIST_FILTERS = ("state", "entity_type", "typology", "source", "region", "min_priority", "overdue", "risk_level",
                "min_amount", "max_amount", "assignee", "q")
# The most clues one Excel export holds, and one bulk assignment moves.
MAX_EXPORT_ROWS = 10_000
MAX_BULK = 200
# Clue entity type -> the entity_type of its label (features.contract.ENTITY_TYPES).
LABEL_ENTITY_TYPE = {"psn": "psn", "prac": "prac", "fixmedins": "fixmedins", "pharmacy": "fixmedins", "ring": "ring"}
_RISK_RANK = {level: i for i, level in enumerate(RISK_LEVELS)}  # high 0 .. low 2
_CLUE_FIELDS = {"entity_type", "entity_id", "entity_name", "region", "p_fraud", "amount_at_risk", "risk_level",
                "typologies", "sources", "reasons", "rule_hits", "evidence"}
_MAX_LIMIT = 1000
# The largest amount (元) a person may enter: 1 亿. Far above any one clue, far below what breaks a sum.
MAX_AMOUNT = 100_000_000.0
# How long the first answer to a request with an idempotency key is kept for retries.
IDEMPOTENCY_DAYS = 7
# A job whose service process cannot be checked (another host) counts as lost after this long.
JOB_STALE_HOURS = 2
LIVE_JOB_STATES = ("queued", "running")
# SQLite: how long a transaction waits for its turn to write within a process, and the lock it queues on.
WRITE_WAIT_SECONDS = 30
_WRITE_LOCKS: dict[str, threading.Lock] = {}
# Clue ids are 32-bit integer keys (PostgreSQL ``integer``): a larger number names no clue.
_MAX_CLUE_ID = 2**31 - 1
# Execution option of a connection that only reads (the token check): SQLite takes no write lock for it.
READ_ONLY = "yibao_read_only"


class ClueNotFound(LookupError):
    """No such clue, or not one the user may see (the two are not told apart)."""


class AttachmentCorrupted(RuntimeError):
    """An attachment whose stored bytes no longer match the SHA-256 recorded with them."""


class ClueInputError(ValueError):
    """Clues from the screening job that do not fit the store; nothing of the batch was written."""


class StoreBusy(RuntimeError):
    """A SQLite store whose writers queued longer than :data:`WRITE_WAIT_SECONDS` (the service answers 503)."""


class UserError(ValueError):
    """A user account that cannot be created or changed as asked."""


class IdempotencyConflict(ValueError):
    """An idempotency key this user already sent with a different request."""


class Replayed(dict):
    """The stored first answer to a request retried with the same idempotency key (nothing was done again)."""


class JobNotFound(LookupError):
    """No such job, or not one of the user's (the two are not told apart)."""


class TooManyJobs(RuntimeError):
    """The user already has as many jobs running or waiting as allowed, or the service as a whole has."""


@dataclass(frozen=True)
class UpsertCounts:
    """What one :meth:`ClueStore.upsert_clues` call did."""

    new: int
    updated: int
    unchanged: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def open_store(url: str, *, sla_days: int | Mapping[str, int] | None = None, identity_vault: Path | None = None,
               clock: Callable[[], datetime] | None = None, upgrade: bool = True) -> ClueStore:
    """Connect to the store at ``url``, migrate it to the newest schema, and return it.

    ``sla_days``: the 核查期限 per risk level (``{"high": 30, "medium": 60, "low": 90}``; an int sets the
    high-risk one; default :attr:`features.config.Settings.clue_sla_days_by_risk`).
    ``url``: ``sqlite:///path/clues.db`` (the folder is created), ``sqlite://`` (in memory, for tests)
    or ``postgresql+psycopg://user:pass@host/db``. ``identity_vault`` is the DuckDB file of clear
    identities (``Settings.identity_vault``) used by :meth:`ClueStore.resolve_identity`. ``upgrade=False``
    skips the migration (a background process of a service that has already migrated).
    """
    engine = _engine(url)
    if upgrade:
        migrate(engine)
    return ClueStore(engine, sla_days=sla_days, identity_vault=identity_vault, clock=clock,
                     token_engine=_token_engine(url, engine))


def store_for(settings, *, clock: Callable[[], datetime] | None = None) -> ClueStore:
    """:func:`open_store` with the URL, SLA and identity vault of a :class:`features.config.Settings`."""
    return open_store(settings.clue_db_url, sla_days=settings.clue_sla_days_by_risk,
                      identity_vault=Path(settings.identity_vault), clock=clock)


def migrate(engine: Engine, revision: str = "head") -> None:
    """Run the Alembic migrations in ``serving/clues/migrations`` up to ``revision`` (no alembic.ini)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


class ClueStore:
    """Clues, their workflow and users on one database (see the module docstring)."""

    def __init__(self, engine: Engine, *, sla_days: int | Mapping[str, int] | None = None,
                 identity_vault: Path | None = None, clock: Callable[[], datetime] | None = None,
                 token_engine: Engine | None = None) -> None:
        days = Settings().clue_sla_days_by_risk
        days |= {"high": sla_days} if isinstance(sla_days, int) else dict(sla_days or {})
        for level, n in days.items():
            if level not in RISK_LEVELS or not isinstance(n, int) or n < 1:
                raise ValueError(f"sla_days: {level} must be a risk level ({', '.join(RISK_LEVELS)}) with at least "
                                 f"1 day, not {n!r}")
        self.engine = engine
        # the token check's own connections (:func:`_token_engine`); the store's engine where none is given
        self.token_engine = token_engine or engine
        self.sla_days_by_risk = days
        self.sla_days = days["high"]
        self.identity_vault = identity_vault
        self._clock = clock or _now
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        # reads (the list, a clue, the statistics) take no write lock: they read one snapshot, then write
        # their audit entry in a short transaction of its own (:meth:`_audit_now`)
        self._readers = sessionmaker(engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False,
                                     info={READ_ONLY: True})

    def close(self) -> None:
        if self.token_engine is not self.engine:
            self.token_engine.dispose()
        self.engine.dispose()

    def __enter__(self) -> ClueStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- screening ----------------------------------------------------------------------------------

    def upsert_clues(self, run_id: str, clues: list[dict]) -> UpsertCounts:
        """Write the clues of screening run ``run_id``: new ones are added, known ones refreshed.

        Each clue is a dict with ``entity_type`` (psn, prac, fixmedins, pharmacy, ring), ``entity_id``,
        ``p_fraud`` (0..1) and ``amount_at_risk`` (元), and optionally ``entity_name``, ``region`` (6-digit
        admdvs), ``risk_level`` (high/medium/low; default from p_fraud), ``typologies`` (ids of
        ``FRAUD_TYPES``), ``sources`` (model, rule, graph, report, referral), ``reasons`` (list of
        ``{text_zh, feature, value, peer_value, contribution}``), ``rule_hits`` (list of
        ``{rule_id, typology, hits, amount_at_risk}``) and ``evidence`` (``{setl_id: [...], psn_no: [...],
        graph: {...}}``). Priority is ``p_fraud * amount_at_risk``.

        A known clue gets the new scores, reasons, rule hits and evidence; its typologies and sources
        are merged with the old ones; its state, assignee and amounts are never touched. A clue gets its
        核查期限 (SLA deadline) from its risk level (:attr:`sla_days_by_risk`) when first raised; when a
        re-run raises its risk level, the deadline of the new level counted from now applies if earlier.
        """
        rows = _validated(clues)
        now = self._clock()
        new = updated = unchanged = 0
        with self._sessions.begin() as s:
            known: dict[str, Clue] = {}
            keys = [r["clue_key"] for r in rows]
            for i in range(0, len(keys), 500):
                for c in s.scalars(select(Clue).where(Clue.clue_key.in_(keys[i:i + 500]))):
                    known[c.clue_key] = c
            for r in rows:
                c = known.get(r["clue_key"])
                if c is None:
                    c = Clue(**r, state="new", created_at=now, updated_at=now, first_seen_run=run_id,
                             last_seen_run=run_id, due_at=self._due(r["risk_level"], now))
                    s.add(c)
                    known[c.clue_key] = c
                    new += 1
                    continue
                merged = dict(r, typologies=_union(c.typologies, r["typologies"]),
                              sources=_union(c.sources, r["sources"]))
                changed = {k: v for k, v in merged.items() if getattr(c, k) != v}
                c.last_seen_run = run_id
                if c.due_at is None:  # raised before every risk level had a deadline
                    c.due_at = self._due(c.risk_level, c.created_at)
                if not changed:
                    unchanged += 1
                    continue
                raised = _RISK_RANK[r["risk_level"]] < _RISK_RANK[c.risk_level]
                for k, v in changed.items():
                    setattr(c, k, v)
                if raised:
                    c.due_at = min(c.due_at, self._due(c.risk_level, now))
                c.updated_at = now
                updated += 1
            counts = UpsertCounts(new, updated, unchanged)
            run = s.get(ScreeningRun, run_id)
            if run is None:
                s.add(ScreeningRun(run_id=run_id, started_at=now, finished_at=now,
                                   counts=counts.to_dict() | {"clues": len(rows)}))
            else:  # a run may write its clues in several batches
                total = dict(run.counts)
                for k, v in (counts.to_dict() | {"clues": len(rows)}).items():
                    total[k] = total.get(k, 0) + v
                run.counts, run.finished_at = total, now
            self._audit(s, SYSTEM, "upsert", None, {"run_id": run_id} | counts.to_dict())
        return counts

    def runs(self) -> list[dict]:
        """The screening runs that fed the store, newest first."""
        with self._sessions() as s:
            return [{"run_id": r.run_id, "started_at": _ts(r.started_at), "finished_at": _ts(r.finished_at),
                     "counts": r.counts}
                    for r in s.scalars(select(ScreeningRun).order_by(ScreeningRun.started_at.desc()))]

    # -- reading ------------------------------------------------------------------------------------

    def list(self, user: User, *, sort: str = "priority", order: str | None = None, limit: int = 50,
             offset: int = 0, **filters) -> dict:
        """The ranked clue list (线索清单) ``user`` may see, filtered; audited as ``list``.

        Filters (:data:`LIST_FILTERS`, see :meth:`_filtered`): ``state``, ``entity_type``, ``typology``,
        ``source``, ``region`` (admdvs prefix), ``min_priority``, ``overdue`` (True: still open past the
        核查期限; False: not so), ``risk_level``, ``min_amount`` / ``max_amount`` (涉及金额, 元),
        ``assignee`` (承办人 username: 我的线索) and ``q`` (search: part of the entity code or name).
        ``sort`` is one of :data:`SORTS`, ``order`` asc/desc reverses its natural order. Returns
        ``{total, limit, offset, items}`` with one summary dict per clue.
        """
        access.require("list", user)
        _check_choice("sort", sort, SORTS)
        _check_choice("order", order, SORT_ORDERS)
        if not 0 < limit <= _MAX_LIMIT or offset < 0:
            raise ValueError(f"limit must be 1..{_MAX_LIMIT} and offset ≥ 0 (got limit={limit}, offset={offset})")
        now = self._clock()
        q = self._filtered(user, now, filters)
        with self._readers.begin() as s:
            total = s.scalar(select(func.count()).select_from(q.subquery()))
            rows = s.scalars(q.order_by(*_order(sort, order)).limit(limit).offset(offset))
            items = [self._summary(c, now) for c in rows]
        self._audit_now(user, "list", None, _filter_audit(filters | {"sort": sort, "order": order})
                        | {"returned": len(items), "total": total})
        return {"total": total, "limit": limit, "offset": offset, "items": items}

    def export_list(self, user: User, *, sort: str = "priority", order: str | None = None,
                    limit: int = MAX_EXPORT_ROWS, **filters) -> dict:
        """The filtered clue list in full (at most ``limit`` ≤ :data:`MAX_EXPORT_ROWS` clues), for the Excel
        export (导出清单); audited as ``export_list`` with the filters and the clue ids exported.

        Returns ``{total, items, truncated}``: ``truncated`` when more clues match than were exported.
        """
        access.require("list", user)
        _check_choice("sort", sort, SORTS)
        _check_choice("order", order, SORT_ORDERS)
        if not 0 < limit <= MAX_EXPORT_ROWS:
            raise ValueError(f"limit must be 1..{MAX_EXPORT_ROWS} (got {limit})")
        now = self._clock()
        q = self._filtered(user, now, filters)
        with self._readers.begin() as s:
            total = s.scalar(select(func.count()).select_from(q.subquery()))
            items = [self._summary(c, now) for c in s.scalars(q.order_by(*_order(sort, order)).limit(limit))]
        self._audit_now(user, "export_list", None, _filter_audit(filters | {"sort": sort, "order": order}) | {
            "total": total, "clue_ids": [c["id"] for c in items]})
        return {"total": total, "items": items, "truncated": total > len(items)}

    def get(self, clue_id: int, user: User) -> dict:
        """One clue in full: scores, reasons, rule hits, evidence, transitions, comments; audited as ``read_detail``.

        ``allowed_transitions`` lists the moves this user may make now (empty for roles that may not move).
        """
        with self._readers.begin() as s:
            c = self._visible_clue(s, clue_id, user, "read_detail")
            detail = self._detail(s, c, user)
        self._audit_now(user, "read_detail", c.id, {"clue_key": c.clue_key})
        return detail

    def statistics(self, user: User, now: datetime | None = None, **filters) -> dict:
        """Counts and amounts by state, source, typology, region and age band over the clues ``user`` sees,
        narrowed by the list's ``filters`` (:data:`LIST_FILTERS`: the statistics follow the list).

        By typology, a clue is counted under each typology it carries and its amounts are split over them
        in proportion to their rule hits' amounts (equally without hits): the typologies' amounts add up
        to the total. By source, a clue with several sources counts whole under each (a source is how it
        was found, not a share of its money).

        ``share_cleared`` is the 清仓见底 progress: clues dismissed, transferred or closed over all clues.
        Age bands (days since first raised) count every clue and, separately, the open ones (the backlog).
        """
        access.require("statistics", user)
        now = now or self._clock()
        cols = (Clue.state, Clue.sources, Clue.typologies, Clue.rule_hits, Clue.region, Clue.created_at,
                Clue.amount_at_risk, Clue.confirmed_amount, Clue.recovered_amount, Clue.risk_level, Clue.due_at,
                Clue.referral_outcome)
        q = self._filtered(user, now, filters)
        with self._readers.begin() as s:
            rows = s.execute(q.with_only_columns(*cols)).all()
        out = _statistics(rows, now, self.sla_days_by_risk)
        self._audit_now(user, "statistics", None, _filter_audit(filters) | {"total": out["total"]})
        return out

    def overdue(self, user: User, now: datetime | None = None) -> list[dict]:
        """Clues still open past their 核查期限 (逾期; every risk level has one), each with a cross-checker to offer.

        The first time a clue is found overdue it is flagged (``overdue_flagged_at``). The suggested
        cross-checker (交叉检查) is an active investigator whose region does not cover the clue's region,
        the one with the fewest open clues assigned, so that another region verifies it.
        """
        access.require("overdue", user)
        now = now or self._clock()
        with self._sessions.begin() as s:
            q = (select(Clue).where(access.visible(user), _late(now)).order_by(Clue.due_at, Clue.id))
            late = list(s.scalars(q))
            investigators = list(s.scalars(select(UserAccount).where(UserAccount.role == "investigator",
                                                                     UserAccount.active.is_(True))))
            load = dict(s.execute(select(Clue.assignee, func.count()).where(Clue.state.in_(OPEN_STATES))
                                  .group_by(Clue.assignee)).all())
            out = []
            for c in late:
                if c.overdue_flagged_at is None:
                    c.overdue_flagged_at = now
                others = [u for u in investigators
                          if not (c.region or "").startswith(u.region) and u.username != c.assignee]
                pick = min(others, key=lambda u: (load.get(u.username, 0), u.username), default=None)
                out.append(self._summary(c, now) | {
                    "overdue_days": (now - c.due_at).days,
                    "cross_check": None if pick is None else {"username": pick.username, "region": pick.region,
                                                              "open_clues": load.get(pick.username, 0)},
                })
            self._audit(s, user, "overdue", None, {"overdue": len(out), "clue_ids": [o["id"] for o in out]})
        return out

    # -- workflow -----------------------------------------------------------------------------------

    def transition(self, clue_id: int, to_state: str, user: User, reason: str | None = None, *,
                   confirmed_amount: float | None = None, recovered_amount: float | None = None,
                   assignee: str | None = None, idempotency_key: str | None = None) -> dict:
        """Move a clue to ``to_state`` as ``user``, recording who, when and why; returns the new detail.

        The allowed moves and what each needs are :data:`serving.clues.workflow.TRANSITIONS` and
        ``REQUIREMENTS``: ``confirmed`` needs ``confirmed_amount`` (查实金额), ``dismissed`` a ``reason``,
        ``assigned`` an ``assignee`` (default: the user). ``recovered_amount`` (追回金额) may be given on
        any move of a confirmed clue; amounts are at most :data:`MAX_AMOUNT`. Raises ``IllegalTransition``,
        ``AccessDenied`` or ``ClueNotFound``.

        With ``idempotency_key`` the answer is stored with the move; the same user sending the same key
        again gets that answer back as :class:`Replayed` and nothing is written (the same key with another
        request: :class:`IdempotencyConflict`).
        """
        if to_state not in STATES:
            raise UnknownState(f"未知状态 (unknown state) {to_state!r}; 可用 (known): {', '.join(STATES)}")
        fingerprint = _fingerprint("transition", clue_id, to_state, reason, confirmed_amount, recovered_amount,
                                   assignee)
        reason = mask_id(reason.strip()) if reason else None
        for name, value in (("confirmed_amount", confirmed_amount), ("recovered_amount", recovered_amount)):
            if value is not None and not (math.isfinite(value) and 0 <= value <= MAX_AMOUNT):
                raise ValueError(f"{name} 必须是 0 到 {MAX_AMOUNT:,.0f} 元之间的金额 "
                                 f"(must be a non-negative amount of at most {MAX_AMOUNT:,.0f})")
        confirmed_amount = None if confirmed_amount is None else round(float(confirmed_amount), 2)
        recovered_amount = None if recovered_amount is None else round(float(recovered_amount), 2)
        if to_state == "assigned" and assignee is None:
            assignee = user.username
        now = self._clock()
        try:
            return self._transition(clue_id, to_state, user, reason, confirmed_amount, recovered_amount, assignee,
                                    now, idempotency_key, fingerprint)
        except IntegrityError:  # the same key committed meanwhile by a concurrent request (PostgreSQL)
            if idempotency_key is None:
                raise
            return self._replay_committed(user, idempotency_key, fingerprint)

    def _transition(self, clue_id: int, to_state: str, user: User, reason: str | None,
                    confirmed_amount: float | None, recovered_amount: float | None, assignee: str | None,
                    now: datetime, key: str | None, fingerprint: str) -> dict:
        with self._sessions.begin() as s:
            c = self._visible_clue(s, clue_id, user, "transition", lock=True)
            # looked up under the clue's lock: a concurrent request with the same key has committed by now
            stored = self._replay(s, user, key, fingerprint)
            if stored is not None:
                return stored
            check_transition(c.id, c.clue_key, c.state, to_state, reason=reason, confirmed_amount=confirmed_amount,
                             assignee=assignee, referral_outcome=c.referral_outcome)
            if confirmed_amount is not None and to_state != "confirmed":
                raise ValueError(f"查实金额只在转到「查实」时填写 (confirmed_amount is recorded when moving to "
                                 f"confirmed, not {to_state})")
            if recovered_amount is not None and "confirmed" not in (c.outcome, to_state):
                raise ValueError(f"线索 #{c.id} 未查实, 不能登记追回金额 (clue not confirmed: no recovered amount)")
            if to_state == "assigned":
                a = s.scalar(select(UserAccount).where(UserAccount.username == assignee))
                if assignee != user.username and (a is None or not a.active or a.role not in ("investigator", "admin")):
                    raise UserError(f"承办人 {assignee} 不是在用的核查人员 (assignee is not an active investigator)")
                c.assignee = assignee
            detail = {k: v for k, v in (("confirmed_amount", confirmed_amount), ("recovered_amount", recovered_amount),
                                        ("assignee", assignee if to_state == "assigned" else None)) if v is not None}
            s.add(ClueTransition(clue_id=c.id, from_state=c.state, to_state=to_state, actor=user.username,
                                 role=user.role, at=now, reason=reason, detail=detail))
            if to_state in OUTCOME_OF:
                c.outcome, c.decided_at = OUTCOME_OF[to_state], now
            elif to_state in OPEN_STATES:  # reopened: no longer a decided outcome (label)
                c.outcome, c.decided_at = None, None
            if confirmed_amount is not None:
                c.confirmed_amount = confirmed_amount
            if recovered_amount is not None:
                c.recovered_amount = recovered_amount
            from_state, c.state, c.updated_at = c.state, to_state, now
            s.flush()
            self._audit(s, user, "transition", c.id, {"from": from_state, "to": to_state} | detail)
            out = self._detail(s, c, user)
            self._remember(s, user, key, fingerprint, "transition", c.id, out)
        return out

    def bulk_assign(self, clue_ids: Iterable[int], assignee: str, user: User, reason: str | None = None) -> dict:
        """批量分派: assign each clue of ``clue_ids`` to ``assignee`` as ``user``, clue by clue.

        Each clue moves as :meth:`transition` to ``assigned`` would move it (the same checks, a
        ``clue_transition`` row and a ``transition`` audit entry each): a clue the user may not see, or
        whose state does not allow assigning (e.g. 查实, 办结), is refused and the others go on. The
        batch itself is audited as ``bulk_assign``. At most :data:`MAX_BULK` clues; an assignee who is not
        an active investigator or admin refuses the whole batch (:class:`UserError`) before anything moves.

        Returns ``{assigned: [ids], refused: [{id, error}]}``.
        """
        access.require("transition", user)
        ids = list(dict.fromkeys(int(i) for i in clue_ids))
        if not 0 < len(ids) <= MAX_BULK:
            raise ValueError(f"批量分派一次 1 到 {MAX_BULK} 条线索 (bulk assignment takes 1..{MAX_BULK} clues, "
                             f"got {len(ids)})")
        with self._sessions() as s:
            a = s.scalar(select(UserAccount).where(UserAccount.username == assignee))
        if a is None or not a.active or a.role not in ("investigator", "admin"):
            raise UserError(f"承办人 {assignee} 不是在用的核查人员 (assignee is not an active investigator)")
        assigned, refused = [], []
        for clue_id in ids:
            try:
                self.transition(clue_id, "assigned", user, reason, assignee=assignee)
                assigned.append(clue_id)
            except (ClueNotFound, IllegalTransition, AccessDenied, UserError, ValueError) as e:
                refused.append({"id": clue_id, "error": str(e)})
        with self._sessions.begin() as s:
            self._audit(s, user, "bulk_assign", None, {"assignee": assignee, "assigned": assigned,
                                                        "refused": [r["id"] for r in refused]})
        return {"assigned": assigned, "refused": refused}

    def record_referral_outcome(self, clue_id: int, user: User, outcome: str, outcome_date: date, doc_no: str,
                                note: str | None = None, *, idempotency_key: str | None = None) -> dict:
        """公安反馈: record what public security did with a clue transferred to it; returns the new detail.

        ``outcome`` is one of :data:`serving.clues.workflow.REFERRAL_OUTCOMES` (accepted 受理, filed 立案,
        not_filed 不立案, returned 退回), ``outcome_date`` the date of public security's decision (not in the
        future), ``doc_no`` its document number (文书号). Only on a clue in 移送公安, by a liaison or an
        investigator who sees it, or an admin (``record_outcome``). Written as a ``clue_transition`` row from 移送公安 to 移送公安 with
        the outcome in its detail, kept on the clue as its latest outcome, audited as ``referral_outcome``.
        A final outcome (立案, 不立案, 退回) lets the clue be closed and counts it as cleared.

        ``idempotency_key``: as for :meth:`transition`, a retry gets the first answer and records nothing.
        """
        _check_choice("outcome", outcome, REFERRAL_OUTCOMES)
        doc_no = mask_id((doc_no or "").strip())
        if not doc_no or len(doc_no) > 100:
            raise ValueError("须填写公安文书号, 至多 100 字 (doc_no: the document number, 1..100 characters)")
        note = mask_id(note.strip()) if note and note.strip() else None
        now = self._clock()
        if not isinstance(outcome_date, date) or outcome_date > now.date():
            raise ValueError(f"反馈日期不能晚于今天 (outcome_date {outcome_date} is in the future)")
        fingerprint = _fingerprint("referral_outcome", clue_id, outcome, outcome_date.isoformat(), doc_no, note)

        def record(s: Session, c: Clue) -> dict:
            if c.state not in CLOSE_NEEDS_REFERRAL_OUTCOME:
                raise IllegalTransition(f"线索 #{c.id} ({c.clue_key}) 当前为「{STATES[c.state]}」, 只有移送公安的线索才能登记"
                                        f"公安反馈 / clue #{c.id} is {c.state}: only a clue transferred to public "
                                        f"security takes an outcome")
            if outcome_date < c.created_at.date():
                raise ValueError(f"反馈日期 {outcome_date} 早于线索发现日期 {c.created_at.date()} "
                                 f"(outcome_date before the clue was raised)")
            detail = {"referral_outcome": outcome, "outcome_date": outcome_date.isoformat(), "doc_no": doc_no}
            s.add(ClueTransition(clue_id=c.id, from_state=c.state, to_state=c.state, actor=user.username,
                                 role=user.role, at=now, reason=note, detail=detail))
            c.referral_outcome, c.referral_outcome_date, c.referral_doc_no = outcome, outcome_date, doc_no
            c.updated_at = now
            s.flush()
            self._audit(s, user, "referral_outcome", c.id, detail)
            return self._detail(s, c, user)

        return self._once(clue_id, user, ("record_outcome", "referral_outcome"), idempotency_key, fingerprint, record)

    def comment(self, clue_id: int, user: User, text: str, *, idempotency_key: str | None = None) -> dict:
        """Add a comment (核查意见) to a clue; resident IDs in the text are masked. Returns the comment.

        ``idempotency_key``: as for :meth:`transition`, a retry gets the first answer and adds nothing.
        """
        text = (text or "").strip()
        if not text:
            raise ValueError("评论不能为空 (empty comment)")
        if len(text) > 4000:
            raise ValueError(f"评论过长 (comment too long): {len(text)} > 4000 characters")
        fingerprint = _fingerprint("comment", clue_id, text)
        now = self._clock()

        def add(s: Session, c: Clue) -> dict:
            row = ClueComment(clue_id=c.id, actor=user.username, role=user.role, at=now, text=mask_id(text))
            s.add(row)
            c.updated_at = now
            s.flush()
            self._audit(s, user, "comment", c.id, {"comment_id": row.id})
            return _comment(row)

        return self._once(clue_id, user, ("comment", "comment"), idempotency_key, fingerprint, add)

    def attach(self, clue_id: int, user: User, content: bytes, filename: str | None, kind: str, *,
               idempotency_key: str | None = None) -> dict:
        """Keep a file gathered for a clue (附件: 现场核查记录, 病历 …) with its SHA-256; returns its record
        (without the bytes). Who may comment may attach; audited with the hash. Raises
        :class:`~serving.clues.attachments.AttachmentRefused` for a file the store does not take.
        ``idempotency_key``: as for :meth:`transition`."""
        meta = checked_attachment(content, filename, kind)
        fingerprint = _fingerprint("attach", clue_id, meta["sha256"], meta["kind"], meta["filename"])
        now = self._clock()

        def add(s: Session, c: Clue) -> dict:
            row = ClueAttachment(clue_id=c.id, actor=user.username, role=user.role, at=now, kind=meta["kind"],
                                 filename=meta["filename"], media_type=meta["media_type"], size=meta["bytes"],
                                 sha256=meta["sha256"], content=content)
            s.add(row)
            c.updated_at = now
            s.flush()
            self._audit(s, user, "attach", c.id, {"attachment_id": row.id, "sha256": row.sha256, "kind": row.kind,
                                                  "bytes": row.size})
            return _attachment(row)

        return self._once(clue_id, user, ("comment", "attach"), idempotency_key, fingerprint, add)

    def attachment(self, clue_id: int, attachment_id: int, user: User) -> tuple[dict, bytes]:
        """One attachment of a clue the user may see, and its bytes, checked against the SHA-256 recorded
        when it was stored (:class:`AttachmentCorrupted` if they differ); audited as ``read_attachment``."""
        with self._readers.begin() as s:
            c = self._visible_clue(s, clue_id, user, "read_detail")
            row = s.scalar(select(ClueAttachment).where(ClueAttachment.clue_id == c.id,
                                                        ClueAttachment.id == attachment_id)) \
                if 0 < attachment_id <= _MAX_CLUE_ID else None
            if row is None:
                raise ClueNotFound(f"线索 #{c.id} 没有附件 #{attachment_id} (no such attachment)")
            content = row.content
            if hashlib.sha256(content).hexdigest() != row.sha256:
                raise AttachmentCorrupted(f"附件 #{row.id} 的内容与存入时的 SHA-256 不符，不予提供 "
                                          f"(attachment #{row.id} does not match its recorded hash)")
            shown = _attachment(row)
        self._audit_now(user, "read_attachment", c.id, {"attachment_id": row.id, "sha256": row.sha256})
        return shown, content

    def _once(self, clue_id: int, user: User, actions: tuple[str, str], key: str | None, fingerprint: str,
              write: Callable[[Session, Clue], dict]) -> dict:
        """``write(session, clue)`` on the clue the user may act on (``actions[0]``, row-locked), done once per
        idempotency ``key``: the answer is remembered as ``actions[1]``, and a retry gets it back (a
        :class:`Replayed`) with nothing written; a twin in flight that lost the race for the key gets the
        winner's answer."""
        permission, action = actions
        try:
            with self._sessions.begin() as s:
                c = self._visible_clue(s, clue_id, user, permission, lock=True)
                stored = self._replay(s, user, key, fingerprint)
                if stored is not None:
                    return stored
                out = write(s, c)
                self._remember(s, user, key, fingerprint, action, c.id, out)
                return out
        except IntegrityError:
            if key is None:
                raise
            return self._replay_committed(user, key, fingerprint)

    # -- background jobs ----------------------------------------------------------------------------

    def create_job(self, kind: str, user: User, *, clue_id: int | None = None, params: dict | None = None,
                   per_user: int = 2, max_live: int = 16, owner_pid: int | None = None,
                   owner_host: str | None = None) -> dict:
        """Register a background job of ``user`` (state ``queued``) run by process ``owner_pid``; returns it.

        A job about a clue needs a clue the user may see (refusals audited as for a detail read). Refused
        with :class:`TooManyJobs` when the user already has ``per_user`` jobs queued or running, or the
        service ``max_live``; jobs of service processes that have died are marked failed first, so they
        do not count.
        """
        job_id = uuid.uuid4().hex
        now = self._clock()
        with self._sessions.begin() as s:
            if clue_id is not None:
                self._visible_clue(s, clue_id, user, "read_detail")
            if self.engine.dialect.name != "sqlite":  # one user's requests one after the other (SQLite: BEGIN IMMEDIATE)
                s.execute(select(UserAccount.id).where(UserAccount.username == user.username).with_for_update())
            live = self._reap(s, list(s.scalars(select(Job).where(Job.state.in_(LIVE_JOB_STATES)))), now)
            mine = sum(j.actor == user.username for j in live)
            if mine >= per_user:
                raise TooManyJobs(f"已有 {mine} 个任务在排队或进行中, 每人最多同时 {per_user} 个, 请等待完成后再试 "
                                  f"(you already have {mine} jobs queued or running; at most {per_user} at once)")
            if len(live) >= max_live:
                raise TooManyJobs(f"服务繁忙: 已有 {len(live)} 个后台任务, 请稍后再试 "
                                  f"(the service has {len(live)} background jobs; try again later)")
            job = Job(id=job_id, kind=kind, actor=user.username, role=user.role, clue_id=clue_id,
                      params=_scrub(dict(params or {})), state="queued", created_at=now,
                      owner_host=owner_host or socket.gethostname(), owner_pid=owner_pid or os.getpid())
            s.add(job)
            self._audit(s, user, "submit_job", clue_id, {"job_id": job_id, "kind": kind} | job.params)
            return _job(job)

    def start_job(self, job_id: str) -> bool:
        """Mark a queued job running; False when it is no longer queued (e.g. found lost and failed)."""
        with self._sessions.begin() as s:
            job = s.get(Job, job_id)
            if job is None or job.state != "queued":
                return False
            job.state, job.started_at = "running", self._clock()
            return True

    def finish_job(self, job_id: str, result: dict) -> None:
        """Record a job's result (``done``)."""
        with self._sessions.begin() as s:
            job = s.get(Job, job_id)
            if job is not None:
                job.state, job.finished_at, job.result = "done", self._clock(), _scrub(dict(result))

    def fail_job(self, job_id: str, error: str) -> None:
        """Record why a job failed (``failed``); resident IDs in the message are masked."""
        with self._sessions.begin() as s:
            job = s.get(Job, job_id)
            if job is not None and job.state in LIVE_JOB_STATES:
                job.state, job.finished_at, job.error = "failed", self._clock(), mask_id(error)[:2000]

    def job(self, job_id: str, user: User) -> dict:
        """One job of ``user`` (an admin sees every job); :class:`JobNotFound` otherwise."""
        with self._sessions.begin() as s:
            job = s.get(Job, job_id)
            if job is None or (job.actor != user.username and user.role != "admin"):
                raise JobNotFound(f"任务不存在 (no such job): {job_id[:40]}")
            self._reap(s, [job], self._clock())
            return _job(job)

    def jobs(self, user: User, *, limit: int = 20) -> list[dict]:
        """The latest jobs of ``user``, newest first."""
        with self._sessions.begin() as s:
            rows = list(s.scalars(select(Job).where(Job.actor == user.username)
                                  .order_by(Job.created_at.desc(), Job.id).limit(limit)))
            self._reap(s, [j for j in rows if j.state in LIVE_JOB_STATES], self._clock())
            return [_job(j) for j in rows]

    def record_download(self, job_id: str, user: User) -> dict:
        """Audit that ``user`` downloaded the result of a finished job; returns the job."""
        with self._sessions.begin() as s:
            job = s.get(Job, job_id)
            if job is None or (job.actor != user.username and user.role != "admin"):
                raise JobNotFound(f"任务不存在 (no such job): {job_id[:40]}")
            self._audit(s, user, "download_job", job.clue_id, {"job_id": job.id, "kind": job.kind,
                                                              "sha256": (job.result or {}).get("sha256")})
            return _job(job)

    # -- labels -------------------------------------------------------------------------------------

    def rule_outcomes(self) -> list[tuple[list[str], bool]]:
        """The decided clues as ``(rule ids of the clue's hits, confirmed?)``, for the confirmation rate of
        each rule (:func:`models.rules.outcomes.confirmation_rates`)."""
        return [(d["rule_ids"], d["confirmed"]) for d in self.decided_clues()]

    def decided_clues(self) -> list[dict[str, Any]]:
        """The decided clues (查实 or 排除): ``entity_type``, ``entity_id``, ``rule_ids`` (of the clue's hits),
        ``typologies`` and ``confirmed``, for the confirmation rates and the shadow runs' report."""
        with self._sessions.begin() as s:
            return [{"entity_type": c.entity_type, "entity_id": c.entity_id,
                     "rule_ids": [h["rule_id"] for h in c.rule_hits or [] if isinstance(h, dict) and h.get("rule_id")],
                     "typologies": [str(t) for t in c.typologies or []], "confirmed": c.outcome == "confirmed"}
                    for c in s.scalars(select(Clue).where(Clue.outcome.is_not(None)).order_by(Clue.id))]

    def export_labels(self, path: Path, user: User = SYSTEM) -> dict:
        """Write the verified outcomes as rows of the ``labels`` table for ``yibao ingest`` (retraining).

        One row per clue and typology: ``label`` 1 for confirmed clues (also when later transferred or
        closed), 0 for dismissed ones; ``amount`` the confirmed amount, split over the typologies by their
        rule-hit amounts (equally when there are none), 0 for dismissed; ``source`` ``verified_clue``;
        ``decided_at`` the moment of the decision. Pharmacies become ``fixmedins``. Clues without a
        typology cannot be labels and are counted as ``skipped``.

        ``path`` ending in ``.csv`` (UTF-8, no BOM) or ``.parquet`` is written as is; any other path is a
        folder that gets ``labels.parquet`` (ready for ``yibao ingest FOLDER``).
        """
        import pandas as pd

        access.require("export_labels", user)
        path = Path(path)
        if path.suffix not in (".csv", ".parquet"):
            path = path / "labels.parquet"
        with self._sessions.begin() as s:
            decided = list(s.scalars(select(Clue).where(Clue.outcome.is_not(None)).order_by(Clue.id)))
            rows, skipped = [], 0
            for c in decided:
                if not c.typologies:
                    skipped += 1
                    continue
                label = 1 if c.outcome == "confirmed" else 0
                shares = _split((c.confirmed_amount or 0.0) if label else 0.0, c.typologies, c.rule_hits)
                for typology, amount in shares.items():
                    rows.append({"entity_type": LABEL_ENTITY_TYPE[c.entity_type], "entity_id": c.entity_id,
                                 "label": label, "fraud_type": typology, "amount": amount,
                                 "source": "verified_clue", "decided_at": _ts(c.decided_at),
                                 "ring_id": c.entity_id if c.entity_type == "ring" else None, "role": None})
            summary = {"path": str(path), "rows": len(rows), "clues": len(decided) - skipped,
                       "positives": sum(r["label"] for r in rows), "negatives": sum(1 - r["label"] for r in rows),
                       "skipped_without_typology": skipped}
            self._audit(s, user, "export_labels", None, summary)
        cols = ["entity_type", "entity_id", "label", "fraud_type", "amount", "source", "decided_at", "ring_id", "role"]
        df = pd.DataFrame(rows, columns=cols).astype({"entity_type": "string", "entity_id": "string",
                                                      "fraud_type": "string", "source": "string",
                                                      "decided_at": "string", "ring_id": "string", "role": "string"})
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".csv":
            df.to_csv(path, index=False, encoding="utf-8")
        else:
            df.to_parquet(path, index=False)
        return summary

    # -- identities ---------------------------------------------------------------------------------

    def resolve_identity(self, clue_id: int, user: User, psn_no: str | None = None) -> list[dict]:
        """Clear resident IDs and names (身份信息) of the persons of a clue, from the identity vault.

        Only for roles that may (:func:`serving.clues.access.may_resolve_identity`) and only for persons
        the clue names (its entity, or ``evidence["psn_no"]``); ``psn_no`` picks one of them. Every call
        is audited with the person numbers resolved, never with the IDs.
        """
        with self._sessions.begin() as s:
            c = self._visible_clue(s, clue_id, user, "resolve_identity")
            persons = ([c.entity_id] if c.entity_type == "psn" else []) + list((c.evidence or {}).get("psn_no", []))
            if psn_no is not None:
                if psn_no not in persons:
                    raise ClueNotFound(f"线索 #{c.id} 不涉及人员 {psn_no} (person not part of clue #{c.id})")
                persons = [psn_no]
            found = _read_vault(self.identity_vault, persons)
            self._audit(s, user, "resolve_identity", c.id, {"psn_no": persons, "found": len(found)})
        return found

    # -- evidence packages --------------------------------------------------------------------------

    def record_export(self, clue_id: int, user: User, detail: dict) -> None:
        """Audit that ``user`` exported an evidence package (证据包) of a clue they may see.

        ``detail`` says what was exported (package hash, files, redaction); it must not hold resident
        IDs or names (any that slip in are masked). Written as an ``export_evidence`` entry of the
        append-only audit log; a clue ``user`` may not see is refused (and the refusal audited).
        """
        with self._sessions.begin() as s:
            c = self._visible_clue(s, clue_id, user, "read_detail")
            self._audit(s, user, "export_evidence", c.id, _scrub(dict(detail)))

    # -- users --------------------------------------------------------------------------------------

    def create_user(self, username: str, role: str, region: str = "", actor: User = SYSTEM) -> str:
        """Create an account and return its token, once (only its SHA-256 is kept).

        An investigator needs a region (admdvs prefix, 2 to 6 digits); for the other roles a region
        narrows what they see ('' = all regions).
        """
        access.require("manage_users", actor)
        username = (username or "").strip()
        if not re.fullmatch(r"[A-Za-z0-9_.@\-\u4e00-\u9fff]{1,80}", username):
            raise UserError(f"用户名无效 (invalid username): {username!r}")
        if role not in ROLES:
            raise UserError(f"未知角色 (unknown role) {role!r}; 可用 (known): {', '.join(ROLES)}")
        region = (region or "").strip()
        if region and not re.fullmatch(r"[0-9]{2,6}", region):
            raise UserError(f"地区应为 2-6 位行政区划代码前缀 (region must be a 2-6 digit admdvs prefix): {region!r}")
        if role == "investigator" and not region:
            raise UserError("核查人员必须有地区 (an investigator needs a region)")
        token = secrets.token_urlsafe(32)
        with self._sessions.begin() as s:
            if s.scalar(select(UserAccount.id).where(UserAccount.username == username)) is not None:
                raise UserError(f"用户已存在 (user exists): {username}")
            s.add(UserAccount(username=username, role=role, region=region, token_sha256=_token_hash(token),
                              active=True, created_at=self._clock()))
            self._audit(s, actor, "create_user", None, {"username": username, "role": role, "region": region})
        return token

    def reset_token(self, username: str, actor: User = SYSTEM) -> str:
        """A new token for ``username`` (the old one stops working); returned once."""
        access.require("manage_users", actor)
        token = secrets.token_urlsafe(32)
        with self._sessions.begin() as s:
            u = self._account(s, username)
            u.token_sha256 = _token_hash(token)
            self._audit(s, actor, "reset_token", None, {"username": username})
        return token

    def set_active(self, username: str, active: bool, actor: User = SYSTEM) -> None:
        """Enable or disable an account (a disabled account's token is refused)."""
        access.require("manage_users", actor)
        with self._sessions.begin() as s:
            self._account(s, username).active = active
            self._audit(s, actor, "set_active", None, {"username": username, "active": active})

    def authenticate(self, token: str | None) -> User | None:
        """The active user holding ``token``, or None."""
        if not token:
            return None
        # Every request of the service comes through here: one Core SELECT on a connection of the token
        # check's own pool (requests that write may hold every connection of the store's pool while
        # they wait for the write lock), marked read-only so that SQLite does not take that lock.
        t = UserAccount.__table__
        q = select(t.c.username, t.c.role, t.c.region).where(t.c.token_sha256 == _token_hash(token),
                                                             t.c.active.is_(True))
        with self.token_engine.connect().execution_options(**{READ_ONLY: True}) as c:
            row = c.execute(q).first()
        return None if row is None else User(row.username, row.role, row.region)

    def user(self, username: str) -> User | None:
        """The active account ``username`` as a :class:`User`, or None (for the terminal's ``--user``)."""
        with self._sessions() as s:
            u = s.scalar(select(UserAccount).where(UserAccount.username == username, UserAccount.active.is_(True)))
            return None if u is None else User(u.username, u.role, u.region)

    def users(self) -> list[dict]:
        """Every account (without token hashes)."""
        with self._sessions() as s:
            return [{"username": u.username, "role": u.role, "role_zh": ROLES[u.role], "region": u.region,
                     "active": u.active, "created_at": _ts(u.created_at)}
                    for u in s.scalars(select(UserAccount).order_by(UserAccount.username))]

    def list_users(self, actor: User) -> list[dict]:
        """Every account, for an administrator (:meth:`users`), audited as ``list_users``."""
        access.require("manage_users", actor)
        with self._sessions.begin() as s:
            self._audit(s, actor, "list_users", None, {})
        return self.users()

    # -- audit --------------------------------------------------------------------------------------

    def audit_log(self, *, clue_id: int | None = None, action: str | None = None, limit: int = 1000) -> list[dict]:
        """Entries of the audit log, oldest first (for admins and tests; reading it is not audited)."""
        q = select(AuditLog).order_by(AuditLog.id)
        if clue_id is not None:
            q = q.where(AuditLog.clue_id == clue_id)
        if action is not None:
            q = q.where(AuditLog.action == action)
        with self._sessions() as s:
            return [{"id": a.id, "at": _ts(a.at), "actor": a.actor, "role": a.role, "action": a.action,
                     "clue_id": a.clue_id, "detail": a.detail} for a in s.scalars(q.limit(limit))]

    # -- private ------------------------------------------------------------------------------------

    def _replay(self, s: Session, user: User, key: str | None, fingerprint: str) -> Replayed | None:
        """The stored answer to ``key`` of ``user`` (None when the key is new); the key with another request
        is refused."""
        if key is None:
            return None
        row = s.scalar(select(IdempotencyKey).where(IdempotencyKey.username == user.username,
                                                    IdempotencyKey.key == key))
        if row is None:
            return None
        if row.fingerprint != fingerprint:
            raise IdempotencyConflict("Idempotency-Key 已用于另一个请求, 请为新请求换一个键 "
                                      "(this Idempotency-Key was sent with a different request)")
        return Replayed(row.response)

    def _replay_committed(self, user: User, key: str, fingerprint: str) -> Replayed:
        with self._sessions() as s:
            stored = self._replay(s, user, key, fingerprint)
        if stored is None:  # the unique index refused something else: not ours to hide
            raise IdempotencyConflict("Idempotency-Key 冲突 (conflicting Idempotency-Key)")
        return stored

    def _remember(self, s: Session, user: User, key: str | None, fingerprint: str, action: str, clue_id: int,
                  response: dict) -> None:
        if key is None:
            return
        now = self._clock()
        s.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < now - timedelta(days=IDEMPOTENCY_DAYS)))
        s.add(IdempotencyKey(username=user.username, key=key, fingerprint=fingerprint, action=action,
                             clue_id=clue_id, response=response, created_at=now))
        s.flush()  # a concurrent twin's key surfaces here as IntegrityError, before anything is committed

    def _reap(self, s: Session, jobs: list[Job], now: datetime) -> list[Job]:
        """Fail the live jobs whose service process is gone; returns the jobs still live."""
        live = []
        for job in jobs:
            if job.state not in LIVE_JOB_STATES:
                continue
            if _process_alive(job.owner_host, job.owner_pid, job.started_at or job.created_at, now):
                live.append(job)
            else:
                job.state, job.finished_at = "failed", now
                job.error = "服务进程已退出, 任务中断, 请重新提交 (the service process running the job exited; submit it again)"
        return live

    def _due(self, risk_level: str, start: datetime) -> datetime:
        return start + timedelta(days=self.sla_days_by_risk[risk_level])

    def _filtered(self, user: User, now: datetime, filters: dict) -> Any:
        """SELECT of the clues ``user`` sees that pass ``filters`` (:data:`LIST_FILTERS`; None = no filter)."""
        unknown = set(filters) - set(LIST_FILTERS)
        if unknown:
            raise ValueError(f"未知的筛选条件 (unknown filter) {sorted(unknown)}; 可用 (known): {', '.join(LIST_FILTERS)}")
        f = {k: filters.get(k) for k in LIST_FILTERS}
        _check_choice("state", f["state"], STATES)
        _check_choice("entity_type", f["entity_type"], CLUE_ENTITY_TYPES)
        _check_choice("typology", f["typology"], FRAUD_TYPES)
        _check_choice("source", f["source"], CLUE_SOURCES)
        _check_choice("risk_level", f["risk_level"], RISK_LEVELS)
        lo, hi = f["min_amount"], f["max_amount"]
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"min_amount {lo} 大于 max_amount {hi} (the amount range is empty)")
        q = select(Clue).where(access.visible(user))
        if f["state"]:
            q = q.where(Clue.state == f["state"])
        if f["entity_type"]:
            q = q.where(Clue.entity_type == f["entity_type"])
        if f["typology"]:
            q = q.where(cast(Clue.typologies, Text).contains('"' + f["typology"] + '"', autoescape=True))
        if f["source"]:
            q = q.where(cast(Clue.sources, Text).contains('"' + f["source"] + '"', autoescape=True))
        if f["region"]:
            q = q.where(Clue.region.startswith(f["region"], autoescape=True))
        if f["min_priority"] is not None:
            q = q.where(Clue.priority >= f["min_priority"])
        if f["overdue"] is not None:
            q = q.where(_late(now) if f["overdue"] else ~_late(now) | Clue.due_at.is_(None))
        if f["risk_level"]:
            q = q.where(Clue.risk_level == f["risk_level"])
        if lo is not None:
            q = q.where(Clue.amount_at_risk >= lo)
        if hi is not None:
            q = q.where(Clue.amount_at_risk <= hi)
        if f["assignee"]:
            q = q.where(Clue.assignee == f["assignee"])
        needle = (f["q"] or "").strip().lower()
        if needle:
            q = q.where(or_(func.lower(Clue.entity_id).contains(needle, autoescape=True),
                            func.lower(Clue.entity_name).contains(needle, autoescape=True)))
        return q

    def _audit(self, s: Session, user: User, action: str, clue_id: int | None, detail: dict) -> None:
        if clue_id is not None and not 0 < clue_id <= _MAX_CLUE_ID:
            # no such clue can exist; the number someone asked for goes to the detail, masked: an 18-digit
            # number may be a resident ID typed into the address (and would not fit the column either)
            detail, clue_id = detail | {"requested_clue_id": mask_id(str(clue_id))}, None
        s.add(AuditLog(at=self._clock(), actor=user.username, role=user.role, action=action, clue_id=clue_id,
                       detail=detail))

    def _audit_now(self, user: User, action: str, clue_id: int | None, detail: dict) -> None:
        """Write one audit entry in a transaction of its own; a read calls it after reading and before it
        answers, so nothing is shown that the log does not record (and a failed write answers nothing)."""
        with self._sessions.begin() as s:
            self._audit(s, user, action, clue_id, detail)

    def _visible_clue(self, s: Session, clue_id: int, user: User, action: str, *, lock: bool = False) -> Clue:
        """The clue if ``user`` may see it and do ``action``; a refusal is audited, then raised."""
        if not access.allowed(action, user):
            self._refuse(s, user, action, clue_id, "role")
            access.require(action, user)
        q = select(Clue).where(Clue.id == clue_id, access.visible(user))
        c = s.scalar(q.with_for_update(of=Clue) if lock else q) if 0 < clue_id <= _MAX_CLUE_ID else None
        if c is None:
            self._refuse(s, user, action, clue_id, "not_visible")
            shown = mask_id(str(clue_id))
            raise ClueNotFound(f"线索 #{shown} 不存在或无权查看 (clue #{shown} not found or not visible)")
        return c

    def _refuse(self, s: Session, user: User, action: str, clue_id: int, why: str) -> None:
        # Committed at once: the refusal stays in the log although the caller's transaction then fails.
        # Callers check access before any change of their own, so nothing else is committed with it.
        if s.info.get(READ_ONLY):  # a read holds no write lock: the refusal gets a transaction of its own
            s.rollback()  # (after the read's, which may share its one connection: an in-memory store)
            self._audit_now(user, "denied", clue_id, {"attempted": action, "why": why})
            return
        self._audit(s, user, "denied", clue_id, {"attempted": action, "why": why})
        s.commit()

    def _summary(self, c: Clue, now: datetime) -> dict:
        return {
            "id": c.id, "clue_key": c.clue_key, "entity_type": c.entity_type,
            "entity_type_zh": CLUE_ENTITY_TYPES[c.entity_type], "entity_id": c.entity_id,
            "entity_name": c.entity_name, "region": c.region, "region_zh": region_name(c.region),
            "priority": c.priority, "p_fraud": c.p_fraud,
            "amount_at_risk": c.amount_at_risk, "risk_level": c.risk_level, "risk_level_zh": RISK_LEVELS[c.risk_level],
            "typologies": list(c.typologies), "typologies_zh": [FRAUD_TYPES[t][0] for t in c.typologies],
            "sources": list(c.sources), "sources_zh": [CLUE_SOURCES[x] for x in c.sources],
            "state": c.state, "state_zh": STATES[c.state], "assignee": c.assignee,
            "confirmed_amount": c.confirmed_amount, "recovered_amount": c.recovered_amount,
            "created_at": _ts(c.created_at), "updated_at": _ts(c.updated_at), "due_at": _ts(c.due_at),
            "age_days": (now - c.created_at).days,
            "overdue": _is_late(c, now),
            "first_seen_run": c.first_seen_run, "last_seen_run": c.last_seen_run,
            "referral_outcome": c.referral_outcome,
            "referral_outcome_zh": REFERRAL_OUTCOMES.get(c.referral_outcome or "") if c.referral_outcome else None,
            "referral_outcome_date": c.referral_outcome_date.isoformat() if c.referral_outcome_date else None,
            "referral_doc_no": c.referral_doc_no,
        }

    def _detail(self, s: Session, c: Clue, user: User) -> dict:
        transitions = s.scalars(select(ClueTransition).where(ClueTransition.clue_id == c.id)
                                .order_by(ClueTransition.id))
        comments = s.scalars(select(ClueComment).where(ClueComment.clue_id == c.id).order_by(ClueComment.id))
        attachments = s.scalars(select(ClueAttachment).where(ClueAttachment.clue_id == c.id)
                                .order_by(ClueAttachment.id))
        moves = allowed_targets(c.state) if access.allowed("transition", user) else ()
        return self._summary(c, self._clock()) | {
            "reasons": c.reasons, "rule_hits": c.rule_hits, "evidence": c.evidence,
            "outcome": c.outcome, "decided_at": _ts(c.decided_at), "overdue_flagged_at": _ts(c.overdue_flagged_at),
            "transitions": [{"from_state": t.from_state, "to_state": t.to_state, "to_state_zh": STATES[t.to_state],
                             "actor": t.actor, "role": t.role, "at": _ts(t.at), "reason": t.reason, **t.detail}
                            for t in transitions],
            "comments": [_comment(x) for x in comments],
            "attachments": [_attachment(x) for x in attachments],
            "allowed_transitions": [{"state": m, "state_zh": STATES[m]} for m in moves],
            "may_comment": access.allowed("comment", user),
            "may_record_outcome": access.allowed("record_outcome", user) and c.state in CLOSE_NEEDS_REFERRAL_OUTCOME,
        }

    def _account(self, s: Session, username: str) -> UserAccount:
        u = s.scalar(select(UserAccount).where(UserAccount.username == username))
        if u is None:
            raise UserError(f"用户不存在 (no such user): {username}")
        return u


# -- module private ---------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now().replace(microsecond=0)


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _token_engine(url: str, engine: Engine) -> Engine:
    """The token check's own small pool on the store at ``url`` (``engine``'s, for an in-memory store).

    The service authenticates every request, on SQLite on its event loop (``serving.auth``). From the
    store's pool it had to wait, like any request, for a connection, and under load the requests that
    write hold them all while they queue for the write lock: the loop then stood still, and every route
    of the worker with it, the pre-check included (seen with py-spy in the soak with eight exports).
    """
    if isinstance(engine.pool, StaticPool):  # one in-memory database: a second engine would be another
        return engine
    return _engine(url, pool_size=2, max_overflow=2)


def _engine(url: str, **pool: Any) -> Engine:
    kw: dict[str, Any] = {"json_serializer": lambda o: json.dumps(o, ensure_ascii=False), **pool}
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path in ("", ":memory:"):
            kw |= {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
        else:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            kw |= {"connect_args": {"timeout": 30}}
    engine = create_engine(url, **kw)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        event.listen(engine, "commit", _sqlite_end)
        event.listen(engine, "rollback", _sqlite_end)
    return engine


def _sqlite_connect(dbapi_conn, _record) -> None:
    dbapi_conn.isolation_level = None  # transactions are begun by _sqlite_begin, not by the driver
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys = ON")
    cur.execute("PRAGMA journal_mode = WAL")  # readers do not block the one writer (CLI beside the service)
    cur.close()


def _sqlite_begin(conn) -> None:
    # Every transaction of the store writes (at least its audit entry): take the write lock up front, so
    # that two processes moving the same clue run one after the other instead of both reading "verifying"
    # (PostgreSQL gets the same from SELECT ... FOR UPDATE). A connection marked READ_ONLY (the token
    # check, the reads of ClueStore._readers) begins a deferred transaction: its statements read one
    # snapshot (WAL) and it never waits for, or holds, the write lock.
    #
    # Within a process the writers queue on a lock first (first come, first served), so that only one
    # thread per process waits on SQLite's own lock: its busy handler polls, and under load forty polling
    # threads let some wait past any time-out ("database is locked" after 30 s, seen in the soak test).
    if conn.get_execution_options().get(READ_ONLY):
        conn.exec_driver_sql("BEGIN")
        return
    lock = _WRITE_LOCKS.setdefault(str(conn.engine.url), threading.Lock())
    if not lock.acquire(timeout=WRITE_WAIT_SECONDS):
        raise StoreBusy(f"线索库繁忙, 请稍后重试 (the clue store is busy; {WRITE_WAIT_SECONDS} s without a turn to write)")
    conn.info["yibao_write_lock"] = lock
    try:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    except BaseException:
        _sqlite_end(conn)
        raise


def _sqlite_end(conn) -> None:
    lock = conn.info.pop("yibao_write_lock", None)
    if lock is not None:
        lock.release()


def _check_choice(name: str, value: str | None, choices: Iterable[str]) -> None:
    choices = list(choices)
    if value is not None and value not in choices:
        raise ValueError(f"未知的 {name} (unknown {name}) {value!r}; 可用 (known): {', '.join(choices)}")


def _late(now: datetime):
    """SQL: still open (新线索, 已分派, 核查中) past the 核查期限."""
    return Clue.state.in_(OPEN_STATES) & (Clue.due_at < now)


def _is_late(c, now: datetime) -> bool:
    """:func:`_late` on a loaded row."""
    return bool(c.state in OPEN_STATES and c.due_at is not None and c.due_at < now)


def _order(sort: str, order: str | None) -> tuple:
    """ORDER BY of a :data:`SORTS` id: its natural order, or ``order`` (asc/desc); ties by clue id."""
    column, natural = {
        "priority": (Clue.priority, "desc"), "age": (Clue.created_at, "asc"), "amount": (Clue.amount_at_risk, "desc"),
        "p_fraud": (Clue.p_fraud, "desc"), "due": (Clue.due_at, "asc"), "region": (Clue.region, "asc"),
        "state": (case({s: i for i, s in enumerate(STATES)}, value=Clue.state), "asc"),
        "assignee": (Clue.assignee, "asc"), "id": (Clue.id, "asc"),
    }[sort]
    direction = order or natural
    first = (column.asc() if direction == "asc" else column.desc()).nulls_last()
    return (first, Clue.id) if sort != "id" else (first,)


def _filter_audit(filters: dict) -> dict:
    """The filters for the audit log: the ones given, a search text masked (it may be a typed resident ID)."""
    return {k: (mask_id(v) if k == "q" else v) for k, v in filters.items() if v is not None and v != ""}


def _union(old: list, new: list) -> list:
    return list(dict.fromkeys([*(old or []), *new]))


def _scrub(value: Any) -> Any:
    """Mask resident IDs in every string of a JSON-like value."""
    if isinstance(value, str):
        return mask_id(value)
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _scrub(v) for k, v in value.items()}
    return value


def _validated(clues: list[dict]) -> list[dict]:
    """The clues as column values, or :class:`ClueInputError` naming every problem."""
    problems, rows, seen = [], [], {}
    for i, raw in enumerate(clues):
        where = f"clue {i} ({raw.get('entity_type')}:{raw.get('entity_id')})"
        bad = []
        unknown = set(raw) - _CLUE_FIELDS
        if unknown:
            bad.append(f"unknown field(s) {sorted(unknown)}")
        et, eid = raw.get("entity_type"), raw.get("entity_id")
        if et not in CLUE_ENTITY_TYPES:
            bad.append(f"entity_type must be one of {list(CLUE_ENTITY_TYPES)}")
        if eid is None or not str(eid).strip():
            bad.append("entity_id is empty")
        elif access.contains_resident_id(str(eid)):
            bad.append("entity_id looks like a resident ID (居民身份证号): use the pseudonymised psn_no")
        p, amount = raw.get("p_fraud"), raw.get("amount_at_risk")
        if not isinstance(p, int | float) or not 0 <= p <= 1:
            bad.append(f"p_fraud must be a probability in [0, 1], not {p!r}")
        if not isinstance(amount, int | float) or not math.isfinite(amount) or amount < 0:
            bad.append(f"amount_at_risk must be a non-negative amount, not {amount!r}")
        region = raw.get("region")
        if region is not None and not re.fullmatch(r"[0-9]{6}", str(region)):
            bad.append(f"region must be a 6-digit admdvs code, not {region!r}")
        typologies = list(raw.get("typologies") or [])
        if set(typologies) - set(FRAUD_TYPES):
            bad.append(f"unknown typologies {sorted(set(typologies) - set(FRAUD_TYPES))}")
        sources = list(raw.get("sources") or [])
        if set(sources) - set(CLUE_SOURCES):
            bad.append(f"unknown sources {sorted(set(sources) - set(CLUE_SOURCES))}; known: {list(CLUE_SOURCES)}")
        risk = raw.get("risk_level")
        if risk is not None and risk not in RISK_LEVELS:
            bad.append(f"risk_level must be one of {list(RISK_LEVELS)}")
        reasons = raw.get("reasons") or []
        if not isinstance(reasons, list) or not all(isinstance(r, dict) and r.get("text_zh") for r in reasons):
            bad.append("reasons must be a list of {text_zh, feature, value, peer_value, contribution}")
        if not isinstance(raw.get("rule_hits") or [], list) or not isinstance(raw.get("evidence") or {}, dict):
            bad.append("rule_hits must be a list and evidence a dict")
        key = f"{et}:{str(eid).strip()}" if eid is not None else None
        if key in seen:
            bad.append(f"same entity as clue {seen[key]}: one clue per entity")
        seen[key] = i
        if bad:
            problems.append(f"{where}: {'; '.join(bad)}")
            continue
        p, amount = float(p), round(float(amount), 2)
        rows.append({
            "clue_key": key, "entity_type": et, "entity_id": str(eid).strip(),
            "entity_name": mask_id(raw.get("entity_name")), "region": None if region is None else str(region),
            "p_fraud": p, "amount_at_risk": amount, "priority": round(p * amount, 2),
            "risk_level": risk or risk_level(p),  # when the screening job gives none
            "typologies": list(dict.fromkeys(typologies)), "sources": list(dict.fromkeys(sources)),
            "reasons": _scrub(reasons), "rule_hits": _scrub(list(raw.get("rule_hits") or [])),
            "evidence": _scrub(dict(raw.get("evidence") or {})),
        })
    if problems:
        shown = "\n".join(problems[:20]) + (f"\n... and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise ClueInputError(f"{len(problems)} 条线索无法写入, 整批未写 ({len(problems)} clue(s) rejected, "
                             f"nothing written):\n{shown}")
    return rows


def _typology_weights(typologies: list[str], rule_hits: list[dict]) -> dict[str, float]:
    """Each typology's share of a clue's amounts: in proportion to its rule hits' amounts at risk, equal
    shares when the hits carry no amount (a model-only clue). The shares add up to 1."""
    weights = {t: 0.0 for t in typologies}
    for h in rule_hits or []:
        if isinstance(h, dict) and h.get("typology") in weights:
            weights[h["typology"]] += float(h.get("amount_at_risk") or 0)
    if sum(weights.values()) <= 0:
        weights = {t: 1.0 for t in typologies}
    whole = sum(weights.values())
    return {t: w / whole for t, w in weights.items()}


def _split(total: float, typologies: list[str], rule_hits: list[dict]) -> dict[str, float]:
    """``total`` over ``typologies`` in proportion to their rule-hit amounts; cents add up exactly."""
    weights = _typology_weights(typologies, rule_hits)
    cents, whole = round(total * 100), sum(weights.values())
    shares = {t: int(cents * w // whole) for t, w in weights.items()}
    shares[typologies[0]] += cents - sum(shares.values())
    return {t: c / 100 for t, c in shares.items()}


def _statistics(rows, now: datetime, sla_days: dict[str, int]) -> dict:
    def bucket() -> dict:
        return {"count": 0, "amount_at_risk": 0.0, "confirmed_amount": 0.0, "recovered_amount": 0.0}

    def add(b: dict, r, share: float = 1.0) -> None:
        b["count"] += 1
        b["amount_at_risk"] += (r.amount_at_risk or 0.0) * share
        b["confirmed_amount"] += (r.confirmed_amount or 0.0) * share
        b["recovered_amount"] += (r.recovered_amount or 0.0) * share

    by_state = {k: bucket() | {"label_zh": v} for k, v in STATES.items()}
    by_source = {k: bucket() | {"label_zh": v} for k, v in CLUE_SOURCES.items()}
    by_typology: dict[str, dict] = {}
    by_region: dict[str, dict] = {}
    by_age = {label: bucket() | {"open": 0} for label, _, _ in AGE_BANDS}
    by_risk = {k: {"label_zh": v, "sla_days": sla_days[k], "open": 0, "overdue": 0} for k, v in RISK_LEVELS.items()}
    by_referral = {k: {"label_zh": v, "count": 0} for k, v in {**REFERRAL_OUTCOMES, "none": "待反馈"}.items()}
    awaiting = 0
    total, overdue = bucket(), 0
    for r in rows:
        add(total, r)
        add(by_state[r.state], r)
        for x in r.sources:
            add(by_source[x], r)
        # a clue counts under every typology it carries, but its money is split over them (by their rule
        # hits' amounts), so that the typologies' amounts add up to the total instead of repeating it
        for t, share in _typology_weights(r.typologies, r.rule_hits).items():
            add(by_typology.setdefault(t, bucket() | {"label_zh": FRAUD_TYPES[t][0]}), r, share)
        add(by_region.setdefault(r.region or "", bucket()), r)
        age = (now - r.created_at).days
        band = next(label for label, lo, hi in AGE_BANDS if hi is None or age <= hi)
        add(by_age[band], r)
        by_age[band]["open"] += r.state in OPEN_STATES
        if r.state in CLOSE_NEEDS_REFERRAL_OUTCOME or r.referral_outcome:
            by_referral[r.referral_outcome or "none"]["count"] += 1
        awaiting += r.state in CLOSE_NEEDS_REFERRAL_OUTCOME and r.referral_outcome not in FINAL_REFERRAL_OUTCOMES
        overdue += _is_late(r, now)
        if r.state in OPEN_STATES:
            by_risk[r.risk_level]["open"] += 1
            by_risk[r.risk_level]["overdue"] += _is_late(r, now)
    # a clue transferred to public security is cleared once public security reports a final outcome
    cleared = sum(by_state[s]["count"] for s in CLEARED_STATES) - awaiting
    for group in (total, *by_state.values(), *by_source.values(), *by_typology.values(), *by_region.values(),
                  *by_age.values()):
        for k in ("amount_at_risk", "confirmed_amount", "recovered_amount"):
            group[k] = round(group[k], 2)
    return {
        "total": total["count"], "amount_at_risk": total["amount_at_risk"],
        "confirmed_amount": total["confirmed_amount"], "recovered_amount": total["recovered_amount"],
        "open": sum(by_state[s]["count"] for s in OPEN_STATES), "cleared": cleared,
        "share_cleared": round(cleared / total["count"], 4) if total["count"] else None,
        "transferred": sum(by_state[s]["count"] for s in TRANSFER_STATES), "overdue": overdue,
        "by_state": by_state, "by_source": by_source,
        "by_typology": dict(sorted(by_typology.items(), key=lambda kv: -kv[1]["count"])),
        "by_region": dict(sorted(by_region.items())), "by_age": by_age, "by_risk": by_risk,
        "awaiting_referral_outcome": awaiting, "by_referral_outcome": by_referral,
    }


def _fingerprint(*request: Any) -> str:
    return hashlib.sha256(json.dumps(request, ensure_ascii=False, default=str).encode("utf-8")).hexdigest()


def _process_alive(host: str, pid: int, since: datetime, now: datetime) -> bool:
    """Whether the service process ``pid`` on ``host`` still runs (another host: assumed for a while)."""
    if host != socket.gethostname():
        return now - since < timedelta(hours=JOB_STALE_HOURS)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def _job(row: Job) -> dict:
    return {"id": row.id, "kind": row.kind, "actor": row.actor, "clue_id": row.clue_id, "params": row.params,
            "state": row.state, "state_zh": JOB_STATES[row.state], "created_at": _ts(row.created_at),
            "started_at": _ts(row.started_at), "finished_at": _ts(row.finished_at), "result": row.result,
            "error": row.error}


def _comment(row: ClueComment) -> dict:
    return {"id": row.id, "actor": row.actor, "role": row.role, "at": _ts(row.at), "text": row.text}


def _attachment(row: ClueAttachment) -> dict:
    return {"id": row.id, "clue_id": row.clue_id, "actor": row.actor, "role": row.role, "at": _ts(row.at),
            "kind": row.kind, "kind_zh": ATTACHMENT_KINDS.get(row.kind, row.kind), "filename": row.filename,
            "media_type": row.media_type, "bytes": row.size, "sha256": row.sha256}


def _read_vault(vault: Path | None, persons: list[str]) -> list[dict]:
    import duckdb

    if not persons:
        return []
    if vault is None or not Path(vault).is_file():
        raise FileNotFoundError(f"身份库不存在 (identity vault not found): {vault}")
    with duckdb.connect(str(vault), read_only=True) as con:
        rows = con.execute("SELECT psn_no, certno, psn_name FROM psn_identity WHERE psn_no IN "
                           f"({', '.join('?' for _ in persons)}) ORDER BY psn_no", persons).fetchall()
    return [{"psn_no": p, "certno": c, "psn_name": n} for p, c, n in rows]
