"""Tables of the clue store (线索库), as SQLAlchemy 2.0 declarative classes.

The schema itself is created by the Alembic migrations in ``serving/clues/migrations``; these classes
must match them (a test compares the migrated schema with this metadata).

``clue``: one row per screened entity (``clue_key = entity_type:entity_id``), with its scores, reasons,
workflow state, amounts and, once transferred to public security, the latest outcome it reported
(公安反馈). ``clue_transition``, ``clue_comment``: its history; ``clue_attachment``: the files gathered
for it. ``audit_log``: every read and write by a user. ``audit_log``, ``clue_transition`` and
``clue_attachment`` are append-only (no update or delete through the ORM; database triggers reject them
too). ``screening_run``: one row per screening run that fed the store. ``user``: accounts with a
role and a region (统筹区 admdvs prefix); only the SHA-256 of a token is stored. ``idempotency_key``: the
first answer to a POST that carried an ``Idempotency-Key`` header, per user, so that a retry returns it
instead of acting twice. ``job``: long work run in the background (evidence packages), its state and result.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (JSON, Date, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, String, Text,
                        UniqueConstraint, event)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Base",
    "Clue",
    "ClueTransition",
    "ClueComment",
    "ClueAttachment",
    "AuditLog",
    "ScreeningRun",
    "UserAccount",
    "IdempotencyKey",
    "Job",
    "JOB_STATES",
    "AppendOnlyError",
    "CLUE_ENTITY_TYPES",
    "CLUE_SOURCES",
    "RISK_LEVELS",
    "ROLES",
]

# Clue entity types: the ids of features.contract.ENTITY_TYPES where they exist; a pharmacy (零售药店) is
# a fixmedins with its own typologies, so it gets its own id here and becomes ``fixmedins`` in labels.
CLUE_ENTITY_TYPES: dict[str, str] = {
    "psn": "参保人",
    "prac": "医保医师/药师",
    "fixmedins": "定点医疗机构",
    "pharmacy": "定点零售药店",
    "ring": "团伙",
}
CLUE_SOURCES: dict[str, str] = {
    "model": "模型",
    "rule": "规则",
    "graph": "关系图",
    "report": "举报",
    "referral": "上级转办",
}
RISK_LEVELS: dict[str, str] = {"high": "高", "medium": "中", "low": "低"}
ROLES: dict[str, str] = {
    "analyst": "分析员",
    "investigator": "核查人员",
    "liaison": "公安联络员",
    "admin": "管理员",
}

# Background job states: waiting for a pool process, running, finished with a result, failed.
JOB_STATES: dict[str, str] = {"queued": "排队中", "running": "生成中", "done": "已完成", "failed": "失败"}


class AppendOnlyError(RuntimeError):
    """An attempt to change or delete a row of an append-only table."""


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Clue(Base):
    __tablename__ = "clue"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    clue_key: Mapped[str] = mapped_column(String(200), unique=True)
    entity_type: Mapped[str] = mapped_column(String(20))
    entity_id: Mapped[str] = mapped_column(String(160))
    entity_name: Mapped[str | None] = mapped_column(String(200))
    region: Mapped[str | None] = mapped_column(String(6), index=True)
    priority: Mapped[float] = mapped_column(Float, index=True)
    p_fraud: Mapped[float] = mapped_column(Float)
    amount_at_risk: Mapped[float] = mapped_column(Float)
    risk_level: Mapped[str] = mapped_column(String(10))
    typologies: Mapped[list[Any]] = mapped_column(JSON)
    sources: Mapped[list[Any]] = mapped_column(JSON)
    reasons: Mapped[list[Any]] = mapped_column(JSON)
    rule_hits: Mapped[list[Any]] = mapped_column(JSON)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(30), index=True)
    assignee: Mapped[str | None] = mapped_column(String(80))
    outcome: Mapped[str | None] = mapped_column(String(20))  # confirmed / dismissed: the label
    decided_at: Mapped[datetime | None] = mapped_column(DateTime)
    confirmed_amount: Mapped[float | None] = mapped_column(Float)
    recovered_amount: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    first_seen_run: Mapped[str | None] = mapped_column(String(80))
    last_seen_run: Mapped[str | None] = mapped_column(String(80))
    due_at: Mapped[datetime | None] = mapped_column(DateTime)  # 核查期限 (SLA deadline, per risk level)
    overdue_flagged_at: Mapped[datetime | None] = mapped_column(DateTime)
    # 公安反馈: the latest outcome public security gave on a clue transferred to it (workflow.REFERRAL_OUTCOMES)
    referral_outcome: Mapped[str | None] = mapped_column(String(20))
    referral_outcome_date: Mapped[date | None] = mapped_column(Date)
    referral_doc_no: Mapped[str | None] = mapped_column(String(100))


class ClueTransition(Base):
    __tablename__ = "clue_transition"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    clue_id: Mapped[int] = mapped_column(ForeignKey("clue.id"), index=True)
    from_state: Mapped[str] = mapped_column(String(30))
    to_state: Mapped[str] = mapped_column(String(30))
    actor: Mapped[str] = mapped_column(String(80))
    role: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(DateTime)
    reason: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)  # amounts, assignee


class ClueComment(Base):
    __tablename__ = "clue_comment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    clue_id: Mapped[int] = mapped_column(ForeignKey("clue.id"), index=True)
    actor: Mapped[str] = mapped_column(String(80))
    role: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(DateTime)
    text: Mapped[str] = mapped_column(Text)


class ClueAttachment(Base):
    """附件: a file gathered for a clue (现场核查记录, 病历 …), its bytes and their SHA-256; append-only
    (:mod:`serving.clues.attachments`)."""

    __tablename__ = "clue_attachment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    clue_id: Mapped[int] = mapped_column(ForeignKey("clue.id"), index=True)
    actor: Mapped[str] = mapped_column(String(80))
    role: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(DateTime)
    kind: Mapped[str] = mapped_column(String(30))
    filename: Mapped[str] = mapped_column(String(200))
    media_type: Mapped[str] = mapped_column(String(60))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)  # read only when downloaded


class AuditLog(Base):
    """审计日志: append-only; ``clue_id`` is empty for actions on the list, statistics, users or labels."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime)
    actor: Mapped[str] = mapped_column(String(80))
    role: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(40))
    clue_id: Mapped[int | None] = mapped_column(Integer)  # no foreign key: the log outlives anything
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)

    __table_args__ = (Index("ix_audit_log_clue_id", "clue_id"),)


class ScreeningRun(Base):
    __tablename__ = "screening_run"

    run_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON)


class UserAccount(Base):
    __tablename__ = "user"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    region: Mapped[str] = mapped_column(String(6))  # admdvs prefix; '' = every region
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class IdempotencyKey(Base):
    """The first answer to a request that carried ``Idempotency-Key`` (per user): a retry gets it back."""

    __tablename__ = "idempotency_key"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(80))
    key: Mapped[str] = mapped_column(String(128))
    fingerprint: Mapped[str] = mapped_column(String(64))  # SHA-256 of what was asked: same key, same request
    action: Mapped[str] = mapped_column(String(40))
    clue_id: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)

    __table_args__ = (UniqueConstraint("username", "key", name="uq_idempotency_key_username_key"),)


class Job(Base):
    """A background job (evidence package): who asked, for what, where it runs, its state and result."""

    __tablename__ = "job"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # random hex: not guessable
    kind: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(80))
    role: Mapped[str] = mapped_column(String(20))
    clue_id: Mapped[int | None] = mapped_column(Integer)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    owner_host: Mapped[str] = mapped_column(String(200))  # the service process that runs it
    owner_pid: Mapped[int] = mapped_column(Integer)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_job_actor_state", "actor", "state"),)


# -- private ----------------------------------------------------------------------------------------


def _refuse(zh: str, en: str):
    def handler(mapper, connection, target) -> None:
        raise AppendOnlyError(f"{target.__tablename__} 只能追加, 不能{zh} (is append-only: {en} refused)")

    return handler


for _cls in (AuditLog, ClueTransition, ClueAttachment):
    event.listen(_cls, "before_update", _refuse("修改", "update"))
    event.listen(_cls, "before_delete", _refuse("删除", "delete"))
