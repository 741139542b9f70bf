"""Types of what the service takes and answers (请求与应答的类型), with the bounds of every value.

One pydantic model per request body and per answer: the routes declare them, so the OpenAPI spec
(``/docs.json``, ``/api/openapi.json``) states what is accepted and what comes back, and a value out of
bounds is refused with 422 before any work is done. The bounds:

| value | bounds |
|---|---|
| clue id | 1 .. 2^63-1 (:data:`MAX_ID`) |
| list ``offset`` / ``limit`` | 0 .. 1,000,000 / 1 .. 1,000 (an Excel export: 1 .. 10,000) |
| list filters | ``region`` 1-6 digits, ``q`` (search) ≤ 64 characters, amounts 0 .. 10^15, a bulk assignment 1 .. 200 clues |
| dates and times | 1900-01-01 .. today + 1 day (:func:`latest_date`) |
| amounts (元) | finite, within ±10^8 (:data:`MAX_AMOUNT`; 查实/追回金额 0 .. 10^8) |
| quantities (``cnt``) | finite, within ±10^6 |
| texts | ids and codes ≤ 64 characters, names ≤ 200, free text ≤ 500 (comments 4,000, reasons 2,000) |
| a visit | ≤ 2,000 fee lines, ≤ 100 diagnoses; a scoring request ≤ 1,000 settlements |

NaN and Infinity are refused everywhere. The pre-check's visit parts are built from the data contract
(:data:`features.contract.TABLES`), field by field. What a single field cannot say is checked on the whole
visit by :func:`implausible_visit`: negative quantities or amounts on a settlement that is not a refund
(退费), a fee line whose amount is not its quantity times its price.

>>> Settlement.model_validate({"setl_id": "S1", "mdtrt_id": "M1", "psn_no": "P1", "fixmedins_code": "H1",
...                            "med_type": "11", "setl_time": "2025-03-01 10:00:00"}).setl_time
'2025-03-01 10:00:00'
>>> from pydantic import ValidationError
>>> try:
...     FeeLine.model_validate({"bkkp_sn": "L1", "fee_ocur_time": "0001-01-01", "hilist_code": "X", "hilist_name": "某药",
...                             "list_type": "101", "med_chrgitm_type": "09", "cnt": 1, "pric": "NaN",
...                             "det_item_fee_sumamt": 1})
... except ValidationError as e:
...     print(sorted(".".join(map(str, err["loc"])) for err in e.errors()))
['fee_ocur_time', 'pric']
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, WithJsonSchema, create_model
from pydantic_core import PydanticCustomError

from features.contract import TABLES
from models.monitoring import Finding
from features.contract import FRAUD_TYPES
from serving.clues.models import CLUE_ENTITY_TYPES, CLUE_SOURCES, RISK_LEVELS
from serving.clues.store import MAX_BULK, MAX_EXPORT_ROWS, SORT_ORDERS, SORTS
from serving.clues.workflow import REFERRAL_OUTCOMES, STATES

__all__ = [
    "MAX_ID",
    "MAX_AMOUNT",
    "MAX_COUNT",
    "MAX_OFFSET",
    "MIN_DATE",
    "latest_date",
    "ClueId",
    "Settlement",
    "FeeLine",
    "Diagnosis",
    "VisitRow",
    "ScoreItem",
    "FieldProblem",
    "ErrorBody",
    "PrecheckResult",
    "ScoreResult",
    "implausible_visit",
    "TransitionIn",
    "CommentIn",
    "ClueFilters",
    "ClueListQuery",
    "ClueExportQuery",
    "BulkAssignIn",
    "BulkAssignOut",
    "ReferralOutcomeIn",
    "Me",
    "Meta",
    "ServiceStatus",
    "ClueSummary",
    "ClueList",
    "ClueRecord",
    "ClueDetail",
    "CommentOut",
    "Statistics",
    "OverdueList",
    "AssigneeList",
    "Identities",
    "JobOut",
    "JobList",
    "IdempotencyKeyText",
]

MAX_ID = 2**63 - 1
MAX_AMOUNT = 100_000_000
MAX_COUNT = 1_000_000
MAX_OFFSET = 1_000_000
MIN_DATE = date(1900, 1, 1)
MAX_LINES = 2000
MAX_DIAGNOSES = 100
MAX_SCORE_ITEMS = 1000
# cnt × pric may differ from the line amount by the rounding of the amount to fen, no more.
AMOUNT_TOLERANCE = Decimal("0.01")
_AMOUNT_TEXT = r"^-?[0-9]{1,8}(\.[0-9]{1,4})?$"
_DATETIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?)?$"


def latest_date() -> date:
    """The latest date the service accepts: tomorrow (a settlement cannot come from further ahead)."""
    return date.today() + timedelta(days=1)


def _in_range(value: str) -> str:
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise PydanticCustomError("datetime_invalid", "不是有效的日期时间 (not a valid date or time)") from None
    if not MIN_DATE <= when.date() <= latest_date():
        raise PydanticCustomError("date_range", "须在 {lo} 至 {hi} 之间 (out of range)",
                                  {"lo": MIN_DATE.isoformat(), "hi": latest_date().isoformat()})
    return value


def _amount_text(value: Any) -> Any:
    if isinstance(value, str) and not re.fullmatch(_AMOUNT_TEXT, value.strip()):
        raise PydanticCustomError("amount_text", "金额文本须为如 12.50 的数字 (an amount as text looks like 12.50)")
    return value


ClueId = Annotated[int, Field(ge=1, le=MAX_ID, description="线索编号 clue id")]
DateTimeText = Annotated[str, StringConstraints(pattern=_DATETIME, max_length=26), AfterValidator(_in_range)]
Code = Annotated[str, StringConstraints(max_length=64)]
RequiredCode = Annotated[str, StringConstraints(min_length=1, max_length=64)]


def _amount(lo: float = -MAX_AMOUNT, hi: float = MAX_AMOUNT) -> Any:
    """An amount in 元 within ``lo..hi``: a JSON number, or text like ``"12.50"`` (as the contract writes it)."""
    pattern = _AMOUNT_TEXT if lo < 0 else _AMOUNT_TEXT.replace("-?", "")
    return Annotated[Decimal, Field(ge=lo, le=hi, allow_inf_nan=False), BeforeValidator(_amount_text),
                     WithJsonSchema({"anyOf": [{"type": "number", "minimum": lo, "maximum": hi},
                                               {"type": "string", "pattern": pattern}]})]


Amount = _amount()
Number = Annotated[float, Field(ge=-MAX_COUNT, le=MAX_COUNT, allow_inf_nan=False)]
Flag = Literal["0", "1"]

# Tighter bounds than the kind's for some fields (a person's age, days in hospital or of a prescription).
_FIELD_BOUNDS: dict[str, dict[str, float]] = {"age": {"ge": 0, "le": 150}, "ipt_days": {"ge": 0, "le": 36500},
                                              "prd_days": {"ge": 0, "le": 36500}, "inscp_amt": {"ge": -MAX_AMOUNT},
                                              "pric_uplmt_amt": {"ge": 0}}
_TEXT_LENGTH = {"hilist_name": 200, "dise_name": 200, "dscg_maindiag_name": 200, "diag_name": 200}
# Fields the pre-check fills in from the settlement (or computes) when a part leaves them out.
_OPTIONAL_IN_VISIT = {
    "setl_d": {"insutype", "medfee_sumamt", "fund_pay_sumamt", "hifp_pay", "psn_pay", "acct_pay", "insu_admdvs",
               "refd_setl_flag"},
    "mdtrt_d": {f.name for f in TABLES["mdtrt_d"].fields},
    "fee_list_d": {"setl_id", "mdtrt_id", "psn_no", "fixmedins_code"},
    "setl_list_diag_d": {"setl_id", "mdtrt_id", "psn_no"},
}


def _contract_model(table: str, name: str, doc: str) -> type[BaseModel]:
    """A request model with the fields of contract table ``table``, each typed and bounded by its kind."""
    fields: dict[str, Any] = {}
    for f in TABLES[table].fields:
        required = f.required and f.name not in _OPTIONAL_IN_VISIT[table]
        bounds = _FIELD_BOUNDS.get(f.name, {})
        if f.kind in ("id", "code", "month"):
            kind: Any = RequiredCode if required else Code
        elif f.kind == "text":
            kind = Annotated[str, StringConstraints(max_length=_TEXT_LENGTH.get(f.name, 500))]
        elif f.kind == "flag":
            kind = Flag
        elif f.kind == "amount":
            kind = _amount(bounds.get("ge", -MAX_AMOUNT), bounds.get("le", MAX_AMOUNT))
        elif f.kind == "number":
            kind = Annotated[Number, Field(**bounds)] if bounds else Number
        elif f.kind == "int":
            kind = Annotated[int, Field(**(bounds or {"ge": -MAX_COUNT, "le": MAX_COUNT}))]
        else:  # datetime, date
            kind = DateTimeText
        description = f"{f.label_zh} ({f.name})"
        fields[f.name] = (kind, Field(description=description)) if required else (
            kind | None, Field(None, description=description))
    model = create_model(name, __config__=ConfigDict(extra="forbid"), __doc__=doc, **fields)
    return model


Settlement = _contract_model("setl_d", "Settlement", "结算 (setl_d) of the visit, in contract field names.")
FeeLine = _contract_model("fee_list_d", "FeeLine", "费用明细 (fee_list_d): one fee line of the visit.")
Diagnosis = _contract_model("setl_list_diag_d", "Diagnosis", "诊断 (setl_list_diag_d): one diagnosis of the visit.")
VisitRow = _contract_model("mdtrt_d", "VisitRow", "就诊 (mdtrt_d): the visit row; made from the settlement when left out.")
FeeLines = Annotated[list[FeeLine], Field(max_length=MAX_LINES)]  # type: ignore[valid-type]
Diagnoses = Annotated[list[Diagnosis], Field(max_length=MAX_DIAGNOSES)]  # type: ignore[valid-type]


class ScoreItem(BaseModel):
    """One settlement to score: its id (features from ``feat_setl``) or its feature row."""

    model_config = ConfigDict(extra="forbid")

    setl_id: Code | None = Field(None, description="结算ID of a settlement in feat_setl")
    features: dict[Annotated[str, StringConstraints(max_length=120)],
                   Annotated[float, Field(ge=-1e12, le=1e12, allow_inf_nan=False)] | None] | None = Field(
        None, max_length=2000, description="a feature row (the columns of feat_setl); null = missing")


ScoreItems = Annotated[list[ScoreItem], Field(max_length=MAX_SCORE_ITEMS)]


# -- answers ------------------------------------------------------------------------------------------

class FieldProblem(BaseModel):
    """What is wrong with one field of a request."""

    field: str = Field(description="the field, e.g. lines[0].cnt or offset")
    problem: str = Field(description="the kind of problem (pydantic error type), e.g. finite_number")
    message_zh: str = Field(description="说明")


class ErrorBody(BaseModel):
    """Every refusal and error of the service: a code word, a sentence (Chinese first), the fields at fault."""

    error: str = Field(description="unauthorized, forbidden, not_found, invalid, illegal_transition, "
                                   "too_many_jobs, not_ready, gone, unavailable, starting, timeout, error")
    detail: str
    fields: list[FieldProblem] | None = None


class RuleHitOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    rule_id: str
    typology_id: str | None = None
    typology_zh: str | None = None
    severity: str | None = None
    severity_zh: str | None = None
    message_zh: str | None = None
    basis_zh: str | None = None
    amount_at_risk: float | None = None
    entity_type: str | None = None
    entity_id: str | None = None
    evidence: Any = None
    detail: Any = None


class ModelReason(BaseModel):
    model_config = ConfigDict(extra="allow")

    text_zh: str


class PrecheckResult(BaseModel):
    """The pre-check of one visit (see docs/serving.md)."""

    setl_id: str
    psn_no: str
    fixmedins_code: str
    mode: Literal["pre", "during"]
    mode_zh: str
    decision: Literal["pass", "remind", "review"]
    decision_zh: str
    risk_level: Literal["high", "medium", "low"] | None
    risk_level_zh: str | None
    reasons_zh: list[str]
    rule_hits: list[RuleHitOut]
    n_rule_hits: int
    amount_at_risk: float | None
    model_score_available: bool
    p_fraud: float | None = Field(ge=0, le=1)
    model_reasons: list[ModelReason]
    model_note: str | None
    rules_checked: int
    pack_version: str | None
    milliseconds: float


class ScoreResult(BaseModel):
    """The score of one settlement, or why it has none."""

    setl_id: str | None
    p_fraud: float | None = Field(ge=0, le=1)
    risk_level: Literal["high", "medium", "low"] | None = None
    risk_level_zh: str | None = None
    source: Literal["feat_setl", "features"] | None = None
    error: str | None = None


# -- the whole visit ----------------------------------------------------------------------------------

def implausible_visit(setl: BaseModel, lines: list[BaseModel]) -> list[tuple[str, str, str]]:
    """``(field, problem, message_zh)`` for what cannot be true of a visit although each field is in bounds.

    On a settlement that is not a refund (``refd_setl_flag`` ≠ 1) no quantity, price or amount is
    negative; on every fee line ``cnt × pric`` equals ``det_item_fee_sumamt`` within 0.01 元.

    >>> s = Settlement.model_validate({"setl_id": "S", "mdtrt_id": "M", "psn_no": "P", "fixmedins_code": "H",
    ...                                "med_type": "11", "setl_time": "2025-03-01"})
    >>> line = {"bkkp_sn": "L", "fee_ocur_time": "2025-03-01", "hilist_code": "X", "hilist_name": "药",
    ...         "list_type": "101", "med_chrgitm_type": "09", "cnt": -1, "pric": 500, "det_item_fee_sumamt": -500}
    >>> [p[:2] for p in implausible_visit(s, [FeeLine.model_validate(line)])]
    [('lines[0].cnt', 'negative_not_refund'), ('lines[0].det_item_fee_sumamt', 'negative_not_refund')]
    """
    problems: list[tuple[str, str, str]] = []
    refund = getattr(setl, "refd_setl_flag", None) == "1"
    if not refund:
        for name in ("medfee_sumamt", "fund_pay_sumamt", "hifp_pay", "psn_pay", "acct_pay"):
            value = getattr(setl, name, None)
            if value is not None and value < 0:
                problems.append((f"setl.{name}", "negative_not_refund",
                                 "非退费结算 (refd_setl_flag≠1) 的金额不能为负 (negative amount on a settlement "
                                 "that is not a refund)"))
    for i, line in enumerate(lines):
        if not refund:
            for name in ("cnt", "pric", "det_item_fee_sumamt"):
                if getattr(line, name) < 0:
                    problems.append((f"lines[{i}].{name}", "negative_not_refund",
                                     "非退费结算 (refd_setl_flag≠1) 的数量、单价、金额不能为负 (negative on a "
                                     "settlement that is not a refund)"))
        expected = Decimal(str(line.cnt)) * line.pric
        if abs(expected - line.det_item_fee_sumamt) > AMOUNT_TOLERANCE:
            problems.append((f"lines[{i}].det_item_fee_sumamt", "amount_mismatch",
                             "明细金额与 数量×单价 相差超过 0.01 元 (line amount is not cnt × pric)"))
    return problems


# -- the clue API (serving.api) -------------------------------------------------------------------------

Username = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.@\-\u4e00-\u9fff]{1,80}$")]
Money = Annotated[float, Field(ge=0, le=MAX_AMOUNT, allow_inf_nan=False)]
IdempotencyKeyText = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:\-]{1,128}$")]


class TransitionIn(BaseModel):
    """A workflow move: the target state and what it needs (查实金额, 理由, 承办人)."""

    model_config = ConfigDict(extra="forbid")

    to_state: Literal[tuple(STATES)] = Field(description="target state, e.g. confirmed; see GET /meta")  # type: ignore[valid-type]
    reason: str | None = Field(None, max_length=2000, description="why (required to dismiss)")
    confirmed_amount: Money | None = Field(None, description="查实金额 (元, 0..1e8), required to confirm")
    recovered_amount: Money | None = Field(None, description="追回金额 (元, 0..1e8), on a confirmed clue")
    assignee: Username | None = Field(None, description="承办人 username, to assign")


class ClueFilters(BaseModel):
    """The filters of the clue list, its statistics and its Excel export (query parameters; all optional)."""

    state: Literal[tuple(STATES)] | None = Field(None, description="流程状态 workflow state")  # type: ignore[valid-type]
    entity_type: Literal[tuple(CLUE_ENTITY_TYPES)] | None = Field(  # type: ignore[valid-type]
        None, description="对象类型 psn, prac, fixmedins, pharmacy, ring")
    typology: Literal[tuple(FRAUD_TYPES)] | None = Field(None, description="违规类型 fraud typology id")  # type: ignore[valid-type]
    source: Literal[tuple(CLUE_SOURCES)] | None = Field(None, description="来源 model, rule, graph, report, referral")  # type: ignore[valid-type]
    region: str | None = Field(None, pattern=r"^[0-9]{1,6}$", description="地区 admdvs prefix")
    risk_level: Literal[tuple(RISK_LEVELS)] | None = Field(None, description="风险等级 high, medium, low")  # type: ignore[valid-type]
    min_priority: float | None = Field(None, ge=0, le=1e15, allow_inf_nan=False, description="优先级下限 (元)")
    min_amount: float | None = Field(None, ge=0, le=1e15, allow_inf_nan=False, description="涉及金额下限 (元)")
    max_amount: float | None = Field(None, ge=0, le=1e15, allow_inf_nan=False, description="涉及金额上限 (元)")
    overdue: bool | None = Field(None, description="true: 逾期 (open past the 核查期限); false: not overdue")
    assignee: Username | None = Field(None, description="承办人 username (我的线索: your own)")
    q: str | None = Field(None, max_length=64, description="搜索: part of the entity code or name (case-insensitive)")

    def filters(self) -> dict[str, Any]:
        """The filters as keyword arguments of the store (``ClueStore.list``, ``statistics``, ``export_list``)."""
        return self.model_dump(include=set(ClueFilters.model_fields))


_Sort = Literal[tuple(SORTS)]  # type: ignore[valid-type]
_Order = Literal[tuple(SORT_ORDERS)]  # type: ignore[valid-type]


class ClueListQuery(ClueFilters):
    """The clue list's query: the filters, the sort (``order`` asc/desc reverses its natural order), a page."""

    sort: _Sort = Field("priority", description="排序 " + ", ".join(SORTS))  # type: ignore[valid-type]
    order: _Order | None = Field(None, description="asc or desc; default the sort's natural order")  # type: ignore[valid-type]
    limit: int = Field(50, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)


class ClueExportQuery(ClueFilters):
    """The Excel export's query: the filters, the sort, at most ``limit`` clues."""

    sort: _Sort = Field("priority", description="排序 " + ", ".join(SORTS))  # type: ignore[valid-type]
    order: _Order | None = Field(None, description="asc or desc")  # type: ignore[valid-type]
    limit: int = Field(MAX_EXPORT_ROWS, ge=1, le=MAX_EXPORT_ROWS)


class BulkAssignIn(BaseModel):
    """批量分派: clues to assign to one investigator."""

    model_config = ConfigDict(extra="forbid")

    clue_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(min_length=1, max_length=MAX_BULK)
    assignee: Username = Field(description="承办人 username")
    reason: str | None = Field(None, max_length=2000)


class BulkRefusal(BaseModel):
    id: int
    error: str


class BulkAssignOut(BaseModel):
    assigned: list[int]
    refused: list[BulkRefusal]


class ReferralOutcomeIn(BaseModel):
    """公安反馈: what public security did with a transferred clue, its date and document number."""

    model_config = ConfigDict(extra="forbid")

    outcome: Literal[tuple(REFERRAL_OUTCOMES)] = Field(  # type: ignore[valid-type]
        description="accepted 受理, filed 立案, not_filed 不立案, returned 退回")
    outcome_date: date = Field(ge=MIN_DATE, description="公安决定日期 YYYY-MM-DD (not in the future)")
    doc_no: str = Field(min_length=1, max_length=100, description="文书号 document number")
    note: str | None = Field(None, max_length=2000, description="说明")


class CommentIn(BaseModel):
    """A comment (核查意见); resident IDs in it are stored masked."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=4000)


class Me(BaseModel):
    username: str
    role: str
    role_zh: str
    region: str
    may: dict[str, bool]


class Meta(BaseModel):
    states: dict[str, str]
    transitions: dict[str, list[str]]
    requirements: dict[str, list[str]]
    typologies: dict[str, str]
    sources: dict[str, str]
    entity_types: dict[str, str]
    risk_levels: dict[str, str]
    sorts: dict[str, str]
    sort_orders: dict[str, str]
    roles: dict[str, str]
    sla_days: dict[str, int]
    regions: dict[str, str]
    med_types: dict[str, str]
    rules: dict[str, str]
    referral_outcomes: dict[str, str]
    attachment_kinds: dict[str, str] = {}


class ServiceStatus(BaseModel):
    model: str | None
    model_levels: list[str]
    model_meta: dict[str, Any]
    precheck: bool
    rules_realtime: int
    settlement_features: dict[str, Any] | None
    clue_store: str
    notes: dict[str, str]
    setup_seconds: dict[str, float]
    jobs: dict[str, Any] | None = None
    online_features: dict[str, Any] | None = None


class OutcomeRate(BaseModel):
    """查实率 of one rule, typology or model level (``models.rules.outcomes.RuleOutcome``)."""
    key: str
    name_zh: str
    decided: int
    confirmed: int
    rate: float | None
    low: float
    high: float
    review: bool  # 建议复核: the 95 % interval lies below the rate of all decided clues
    text_zh: str


class OutcomesOut(BaseModel):
    """The confirmation rates of the decided clues, per rule, typology and model level."""
    decided: int
    overall: float | None
    views: dict[str, list[OutcomeRate]]


class MonitorReportOut(BaseModel):
    """``yibao monitor`` as the analysts' page shows it."""
    months: list[str]
    tests: dict[str, int]
    config: dict[str, Any]
    alarms: int
    notices: int
    findings: list[Finding]  # the monitor's own dataclass: one definition of a finding
    computed_at: str


class ClueSummary(BaseModel):
    """One clue of the list."""

    id: int
    clue_key: str
    entity_type: str
    entity_type_zh: str
    entity_id: str
    entity_name: str | None
    region: str | None
    region_zh: str | None = None  # its name (features.contract.region_name)
    priority: float | None
    p_fraud: float | None
    amount_at_risk: float | None
    risk_level: str
    risk_level_zh: str
    typologies: list[str]
    typologies_zh: list[str]
    sources: list[str]
    sources_zh: list[str]
    state: str
    state_zh: str
    assignee: str | None
    confirmed_amount: float | None
    recovered_amount: float | None
    created_at: str
    updated_at: str
    due_at: str | None
    age_days: int
    overdue: bool
    first_seen_run: str | None
    last_seen_run: str | None
    referral_outcome: str | None = None
    referral_outcome_zh: str | None = None
    referral_outcome_date: str | None = None
    referral_doc_no: str | None = None


class ClueList(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[ClueSummary]


class TransitionRecord(BaseModel):
    from_state: str
    to_state: str
    to_state_zh: str
    actor: str
    role: str
    at: str
    reason: str | None
    confirmed_amount: float | None = None
    recovered_amount: float | None = None
    assignee: str | None = None
    referral_outcome: str | None = None
    outcome_date: str | None = None
    doc_no: str | None = None


class CommentOut(BaseModel):
    id: int
    actor: str
    role: str
    at: str
    text: str


class AttachmentOut(BaseModel):
    """附件 as the store keeps it (the bytes: ``GET /clues/{id}/attachments/{attachment_id}``)."""

    id: int
    clue_id: int
    actor: str
    role: str
    at: str
    kind: str
    kind_zh: str
    filename: str
    media_type: str
    bytes: int
    sha256: str


class StateChoice(BaseModel):
    state: str
    state_zh: str


class ClueRecord(ClueSummary):
    """A clue in full as the store keeps it (the answer to a move, too)."""

    reasons: list[dict[str, Any]]
    rule_hits: list[dict[str, Any]]
    evidence: dict[str, Any]
    outcome: str | None
    decided_at: str | None
    overdue_flagged_at: str | None
    transitions: list[TransitionRecord]
    comments: list[CommentOut]
    attachments: list[AttachmentOut] = []
    allowed_transitions: list[StateChoice]
    may_comment: bool
    may_record_outcome: bool = False


class ClueDetail(ClueRecord):
    """A clue in full with the settlements behind it and its graph neighbourhood."""

    claims: dict[str, Any]
    graph: dict[str, Any]


class Bucket(BaseModel):
    count: int
    amount_at_risk: float | None
    confirmed_amount: float | None
    recovered_amount: float | None
    label_zh: str | None = None
    open: int | None = None


class RiskBucket(BaseModel):
    """Per risk level: the 核查期限 in days, the open clues and how many of them are overdue."""

    label_zh: str
    sla_days: int
    open: int
    overdue: int


class ReferralBucket(BaseModel):
    """Clues transferred to public security by their latest outcome (公安反馈; ``none`` 待反馈)."""

    label_zh: str
    count: int


class Statistics(BaseModel):
    total: int
    amount_at_risk: float | None
    confirmed_amount: float | None
    recovered_amount: float | None
    open: int
    cleared: int
    share_cleared: float | None
    transferred: int
    overdue: int
    by_state: dict[str, Bucket]
    by_source: dict[str, Bucket]
    by_typology: dict[str, Bucket]
    by_region: dict[str, Bucket]
    by_age: dict[str, Bucket]
    by_risk: dict[str, RiskBucket]
    awaiting_referral_outcome: int
    by_referral_outcome: dict[str, ReferralBucket]


class CrossCheck(BaseModel):
    username: str
    region: str
    open_clues: int


class OverdueClue(ClueSummary):
    overdue_days: int
    cross_check: CrossCheck | None


class OverdueList(BaseModel):
    items: list[OverdueClue]


class Assignee(BaseModel):
    username: str
    role: str
    role_zh: str
    region: str


class AssigneeList(BaseModel):
    items: list[Assignee]


class Identity(BaseModel):
    psn_no: str
    certno: str | None
    psn_name: str | None


class Identities(BaseModel):
    clue_id: int
    persons: list[Identity]


class JobOut(BaseModel):
    """A background job (证据包生成任务): its state and, once done, where to download the result."""

    id: str
    kind: str
    clue_id: int | None
    params: dict[str, Any]
    state: Literal["queued", "running", "done", "failed"]
    state_zh: str
    created_at: str
    started_at: str | None
    finished_at: str | None
    result: dict[str, Any] | None
    error: str | None
    status_url: str
    download_url: str | None


class JobList(BaseModel):
    items: list[JobOut]
