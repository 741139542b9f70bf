"""The data contract (数据契约): the national extraction tables and reference tables the system reads.

One ``TableSpec`` per table, in the order of ``../shared/design/data-contract.md``: its fields with their
kind, which are required, the key that makes a row unique, the parent keys it must point at, and which
coded fields take national code values (国家医保编码). The simulator writes exactly these tables and the
ingest validates against them, so this module is the single place the contract lives in code.

>>> TABLES["fee_list_d"].key
('bkkp_sn',)
>>> TABLES["setl_d"].field("med_type").code_set
'med_type'
>>> "psn_no" in TABLES["psn_info"].required
True
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

__all__ = [
    "Field",
    "Coarse",
    "BIRTH_YEAR",
    "NOT_KEPT",
    "TableSpec",
    "TABLES",
    "CLAIM_TABLES",
    "REFERENCE_TABLES",
    "LOAD_ORDER",
    "FRAUD_TYPES",
    "ENTITY_TYPES",
    "code_values",
    "code_meaning",
    "region_name",
]

# Field kinds. ``code`` and ``id`` are strings whose leading zeros matter; ``amount`` is yuan with two
# decimals; ``datetime`` is ``YYYY-MM-DD HH:MM:SS`` local time; ``date`` is ``YYYY-MM-DD``.
KINDS = ("id", "code", "text", "amount", "number", "int", "datetime", "date", "month", "flag")

# DuckDB column types the warehouse uses for each kind.
SQL_TYPES = {
    "id": "VARCHAR",
    "code": "VARCHAR",
    "text": "VARCHAR",
    "amount": "DECIMAL(18,2)",
    "number": "DOUBLE",
    "int": "INTEGER",
    "datetime": "TIMESTAMP",
    "date": "DATE",
    "month": "VARCHAR",
    "flag": "VARCHAR",
}


@dataclass(frozen=True)
class Coarse:
    """What the warehouse keeps in place of a field that, exact, would help single a person out
    (个人信息最小化): the column ``column`` (None: nothing at all) of DuckDB type ``sql_type``, computed by
    ``sql`` from the field's typed value (``{value}``). The exact value, where a rule needs it, is kept in
    the identity vault only (``Field.vault``).

    >>> BIRTH_YEAR.expr("DATE '1992-02-03'")
    "CAST(year(DATE '1992-02-03') AS SMALLINT)"
    """

    column: str | None
    sql_type: str = ""
    sql: str = ""
    label_zh: str = ""

    def expr(self, value: str) -> str:
        return self.sql.format(value=value)


# The birth date (出生日期) becomes the birth year: the two-day window of an exact date, with region and sex,
# leaves a few persons per district (docs/ingest.md, "Personal data").
BIRTH_YEAR = Coarse("birth_year", "SMALLINT", "CAST(year({value}) AS SMALLINT)", "出生年份")
# Not kept at all: an age in years on each settlement's date narrows the birthday to a few days.
NOT_KEPT = Coarse(None)


@dataclass(frozen=True)
class Field:
    """One field of a contract table."""

    name: str
    kind: str
    required: bool = False
    code_set: str | None = None  # name of the national code list in code_values.csv
    label_zh: str = ""
    personal: bool = False  # resident ID / name: never logged or shown unmasked
    # Kind of canonical form (features.codes.CODE_KINDS) for codes that rules, features or the catalogue
    # join on: the warehouse stores the canonical code under the field's name and the code as written
    # in ``<name>_raw`` (NULL when it was already canonical).
    canonical: str | None = None
    # What the warehouse keeps in its place when not the value as given (``Coarse``), and whether the exact
    # value goes to the identity vault (``Settings.identity_vault``, table ``psn_identity``, by psn_no).
    coarse: Coarse | None = None
    vault: bool = False

    @property
    def sql_type(self) -> str:
        return SQL_TYPES[self.kind]

    @property
    def column(self) -> str | None:
        """The warehouse column holding this field (None: the warehouse keeps nothing of it)."""
        return self.name if self.coarse is None else self.coarse.column

    @property
    def column_type(self) -> str:
        """The DuckDB type of :attr:`column`."""
        return self.sql_type if self.coarse is None else self.coarse.sql_type

    @property
    def companions(self) -> tuple[str, ...]:
        """Warehouse columns stored beside a canonical code: the code as written, and for catalogue
        codes the local suffix split off it (``hilist_code_suffix``)."""
        if self.canonical is None:
            return ()
        return (f"{self.name}_raw",) + ((f"{self.name}_suffix",) if self.canonical == "list" else ())


@dataclass(frozen=True)
class TableSpec:
    """One contract table: fields, key, parents."""

    name: str
    label_zh: str
    fields: tuple[Field, ...]
    key: tuple[str, ...]
    # (field, parent table, parent field): a row whose value is in neither the extract nor the
    # warehouse has a missing parent.
    parents: tuple[tuple[str, str, str], ...] = ()
    # Which time field a "future date" check applies to.
    time_fields: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.required)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def stored_fields(self) -> tuple[Field, ...]:
        """The fields the warehouse keeps a column of (as given or coarsened), in contract order."""
        return tuple(f for f in self.fields if f.column is not None)

    @property
    def warehouse_columns(self) -> tuple[str, ...]:
        """The warehouse table's columns but ``_ingest_batch``: one per stored field (a coarsened field
        under its coarse name: ``psn_info.birth_year`` for ``brdy``), then the companions of canonical codes.

        >>> TABLES["psn_info"].warehouse_columns[:5]
        ('psn_no', 'gend', 'birth_year', 'insutype', 'insu_admdvs')
        >>> {"brdy", "age"} & set(TABLES["setl_d"].warehouse_columns)
        set()
        """
        return tuple(f.column for f in self.stored_fields) + self.companion_columns

    @property
    def canonical_fields(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.canonical)

    @property
    def companion_columns(self) -> tuple[str, ...]:
        """The warehouse's columns beyond the contract fields (``Field.companions``), all VARCHAR."""
        return tuple(c for f in self.fields for c in f.companions)

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no field {name!r}")


def _f(name: str, kind: str, req: bool = False, code: str | None = None, zh: str = "", personal=False,
       canonical: str | None = None, coarse: Coarse | None = None, vault: bool = False):
    return Field(name, kind, req, code, zh, personal, canonical, coarse, vault)


SETL_D = TableSpec(
    "setl_d",
    "结算",
    (
        _f("setl_id", "id", True, zh="结算ID"),
        _f("mdtrt_id", "id", True, zh="就诊ID"),
        _f("psn_no", "id", True, zh="人员编号"),
        _f("fixmedins_code", "code", True, zh="定点医药机构编号"),
        _f("med_type", "code", True, "med_type", "医疗类别"),
        _f("insutype", "code", True, "insutype", "险种类型"),
        _f("setl_time", "datetime", True, zh="结算时间"),
        _f("medfee_sumamt", "amount", True, zh="医疗费总额"),
        _f("fund_pay_sumamt", "amount", True, zh="基金支付总额"),
        _f("hifp_pay", "amount", True, zh="统筹基金支出"),
        _f("psn_pay", "amount", True, zh="个人负担总金额"),
        _f("acct_pay", "amount", True, zh="个人账户支出"),
        _f("insu_admdvs", "code", True, zh="参保地医保区划"),
        _f("refd_setl_flag", "flag", True, zh="退费结算标志"),
        _f("begndate", "date", zh="开始日期"),
        _f("enddate", "date", zh="结束日期"),
        _f("fix_blng_admdvs", "code", zh="定点归属医保区划"),
        _f("hosp_lv", "code", code="hosp_lv", zh="医院等级"),
        _f("gend", "code", code="gend", zh="性别"),
        _f("brdy", "date", zh="出生日期", coarse=BIRTH_YEAR),  # exact: psn_info's, in the vault
        _f("age", "number", zh="年龄", coarse=NOT_KEPT),
        _f("dise_no", "code", zh="病种编号"),
        _f("dise_name", "text", zh="病种名称"),
        _f("init_setl_id", "id", zh="原结算ID"),
    ),
    key=("setl_id",),
    parents=(("mdtrt_id", "mdtrt_d", "mdtrt_id"), ("psn_no", "psn_info", "psn_no"),
             ("fixmedins_code", "fixmedins", "fixmedins_code")),
    time_fields=("setl_time",),
)

MDTRT_D = TableSpec(
    "mdtrt_d",
    "就诊",
    (
        _f("mdtrt_id", "id", True, zh="就诊ID"),
        _f("psn_no", "id", True, zh="人员编号"),
        _f("fixmedins_code", "code", True, zh="定点医药机构编号"),
        _f("med_type", "code", True, "med_type", "医疗类别"),
        _f("begntime", "datetime", True, zh="开始时间"),
        _f("endtime", "datetime", True, zh="结束时间"),
        _f("dscg_maindiag_code", "code", zh="出院主诊断代码", canonical="icd"),
        _f("dscg_maindiag_name", "text", zh="出院主诊断名称"),
        _f("adm_dept_codg", "code", zh="入院科室编码", canonical="plain"),
        _f("chfpdr_code", "code", zh="主诊医师代码"),
        _f("ipt_days", "int", zh="住院天数"),
        _f("dscg_way", "code", zh="离院方式"),
        _f("insu_admdvs", "code", zh="参保地医保区划"),
        _f("pay_loc", "code", zh="支付地点类别"),
    ),
    key=("mdtrt_id",),
    parents=(("psn_no", "psn_info", "psn_no"), ("fixmedins_code", "fixmedins", "fixmedins_code")),
    time_fields=("begntime", "endtime"),
)

FEE_LIST_D = TableSpec(
    "fee_list_d",
    "费用明细",
    (
        _f("bkkp_sn", "id", True, zh="记账流水号"),
        _f("setl_id", "id", True, zh="结算ID"),
        _f("mdtrt_id", "id", True, zh="就诊ID"),
        _f("psn_no", "id", True, zh="人员编号"),
        _f("fixmedins_code", "code", True, zh="定点医药机构编号"),
        _f("fee_ocur_time", "datetime", True, zh="费用发生时间"),
        _f("hilist_code", "code", True, zh="医保目录编码", canonical="list"),
        _f("hilist_name", "text", True, zh="医保目录名称"),
        _f("list_type", "code", True, "list_type", "目录类别"),
        _f("med_chrgitm_type", "code", True, "med_chrgitm_type", "医疗收费项目类别"),
        _f("cnt", "number", True, zh="数量"),
        _f("pric", "amount", True, zh="单价"),
        _f("det_item_fee_sumamt", "amount", True, zh="明细项目费用总额"),
        _f("chrgitm_lv", "code", code="chrgitm_lv", zh="收费项目等级"),
        _f("inscp_amt", "amount", zh="符合范围金额"),
        _f("pric_uplmt_amt", "amount", zh="定价上限金额"),
        _f("bilg_dr_code", "code", zh="开单医师代码"),
        _f("bilg_dept_codg", "code", zh="开单科室编码", canonical="plain"),
        _f("prd_days", "number", zh="周期天数"),
        _f("hi_nego_drug_flag", "flag", zh="医保谈判药品标志"),
        _f("med_list_codg", "code", zh="医疗目录编码", canonical="plain"),
    ),
    key=("bkkp_sn",),
    parents=(("setl_id", "setl_d", "setl_id"), ("mdtrt_id", "mdtrt_d", "mdtrt_id")),
    time_fields=("fee_ocur_time",),
)

SETL_LIST_DIAG_D = TableSpec(
    "setl_list_diag_d",
    "结算清单诊断",
    (
        _f("setl_id", "id", True, zh="结算ID"),
        _f("mdtrt_id", "id", True, zh="就诊ID"),
        _f("psn_no", "id", True, zh="人员编号"),
        _f("maindiag_flag", "flag", True, zh="主诊断标志"),
        _f("diag_code", "code", True, zh="诊断代码", canonical="icd"),
        _f("diag_type", "code", zh="诊断类别"),
        _f("diag_name", "text", zh="诊断名称"),
    ),
    key=("setl_id", "diag_code"),
    parents=(("setl_id", "setl_d", "setl_id"),),
)

PSN_INFO = TableSpec(
    "psn_info",
    "参保人",
    (
        _f("psn_no", "id", True, zh="人员编号"),
        _f("gend", "code", True, "gend", "性别"),
        _f("brdy", "date", True, zh="出生日期", coarse=BIRTH_YEAR, vault=True),
        _f("insutype", "code", True, "insutype", "险种类型"),
        _f("insu_admdvs", "code", True, zh="参保地医保区划"),
        _f("die_date", "date", zh="死亡日期"),
        _f("psn_type", "code", code="psn_type", zh="人员类别"),
        _f("certno", "code", zh="证件号码", personal=True),
        _f("psn_name", "text", zh="姓名", personal=True),
    ),
    key=("psn_no",),
)

FIXMEDINS = TableSpec(
    "fixmedins",
    "定点医药机构",
    (
        _f("fixmedins_code", "code", True, zh="定点医药机构编号"),
        _f("fixmedins_name", "text", True, zh="机构名称"),
        _f("fixmedins_type", "code", True, "fixmedins_type", "机构类型"),
        _f("admdvs", "code", True, zh="医保区划"),
        _f("hosp_lv", "code", code="hosp_lv", zh="医院等级"),
        _f("beds", "int", zh="床位数"),
        _f("specialties", "text", zh="专科"),
    ),
    key=("fixmedins_code",),
)

PRACTITIONER = TableSpec(
    "practitioner",
    "医保医师/药师",
    (
        _f("prac_code", "code", True, zh="医师/药师代码"),
        _f("fixmedins_code", "code", True, zh="执业机构编号"),
        _f("dept_codg", "code", zh="科室编码", canonical="plain"),
        _f("caty", "code", zh="专业/科别"),
        _f("title", "text", zh="职称"),
    ),
    key=("prac_code",),
    parents=(("fixmedins_code", "fixmedins", "fixmedins_code"),),
)

HILIST = TableSpec(
    "hilist",
    "医保目录",
    (
        _f("hilist_code", "code", True, zh="医保目录编码", canonical="list"),
        _f("hilist_name", "text", True, zh="目录名称"),
        _f("list_type", "code", True, "list_type", "目录类别"),
        _f("chrgitm_lv", "code", code="chrgitm_lv", zh="收费项目等级"),
        _f("pric_uplmt_amt", "amount", zh="定价上限金额"),
        _f("generic_name", "text", zh="通用名"),
        _f("vbp_flag", "flag", zh="集采中选标志"),
        _f("vbp_group", "code", zh="集采品种组"),
        _f("med_chrgitm_type", "code", code="med_chrgitm_type", zh="医疗收费项目类别"),
    ),
    key=("hilist_code",),
)

STOCK_MOVES = TableSpec(
    "stock_moves",
    "进销存",
    (
        _f("fixmedins_code", "code", True, zh="定点医药机构编号"),
        _f("hilist_code", "code", True, zh="医保目录编码", canonical="list"),
        _f("month", "month", True, zh="月份"),
        _f("opening_qty", "number", True, zh="期初数量"),
        _f("in_qty", "number", True, zh="入库数量"),
        _f("out_qty", "number", True, zh="出库数量"),
        _f("closing_qty", "number", True, zh="期末数量"),
    ),
    key=("fixmedins_code", "hilist_code", "month"),
    parents=(("fixmedins_code", "fixmedins", "fixmedins_code"),),
)

LABELS = TableSpec(
    "labels",
    "标签",
    (
        _f("entity_type", "code", True, "entity_type", "实体类型"),
        _f("entity_id", "id", True, zh="实体ID"),
        _f("label", "int", True, zh="标签"),
        _f("fraud_type", "code", False, "fraud_type", "违规类型"),  # required when label = 1 (features.validate)
        _f("amount", "amount", True, zh="涉及金额"),
        _f("source", "code", True, "label_source", "来源"),
        _f("decided_at", "datetime", True, zh="认定时间"),
        _f("ring_id", "id", zh="团伙ID"),
        _f("role", "code", zh="角色"),
    ),
    key=("entity_type", "entity_id", "fraud_type"),
)

TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in (SETL_D, MDTRT_D, FEE_LIST_D, SETL_LIST_DIAG_D, PSN_INFO, FIXMEDINS, PRACTITIONER, HILIST,
              STOCK_MOVES, LABELS)
}
CLAIM_TABLES = ("setl_d", "mdtrt_d", "fee_list_d", "setl_list_diag_d")
REFERENCE_TABLES = ("psn_info", "fixmedins", "practitioner", "hilist", "stock_moves")
# Parents before children, so that a missing-parent check can look at what is already loaded.
LOAD_ORDER = ("fixmedins", "practitioner", "hilist", "psn_info", "mdtrt_d", "setl_d", "fee_list_d",
              "setl_list_diag_d", "stock_moves", "labels")

# The fraud typology of architecture.md: id -> (中文, level).
FRAUD_TYPES: dict[str, tuple[str, str]] = {
    "dead_person": ("冒用死亡人口信息", "psn"),
    "gender_age_limit": ("限性别/限年龄", "line"),
    "insurance_type_limit": ("限保险类型", "line"),
    "care_setting_limit": ("限就医方式", "line"),
    "institution_level_limit": ("限机构等级", "line"),
    "course_length_limit": ("限支付疗程", "psn"),
    "duplicate_charge": ("重复收费", "line"),
    "frequency_limit": ("限频次/周期", "line"),
    "unbundled_surgery": ("主次手术未折价", "line"),
    "price_over_cap": ("超标准收费", "line"),
    "split_admission": ("分解住院", "mdtrt"),
    "bed_hold": ("挂床住院/虚假住院", "mdtrt"),
    "low_threshold_admission": ("低标准入院", "mdtrt"),
    "over_examination": ("过度检查/过度诊疗", "fixmedins"),
    "fake_treatment": ("虚假诊疗", "fixmedins"),
    "drug_substitution": ("串换药品/项目", "fixmedins"),
    "phantom_purchase": ("虚假购药/空刷", "fixmedins"),
    "card_theft": ("盗刷", "psn"),
    "drug_resale": ("倒卖医保药品", "ring"),
    "over_prescription": ("超量开药/重复开药", "psn"),
    "third_party_liability": ("应由工伤/第三方支付", "setl"),
    "vbp_noncompliance": ("集采中选产品未执行", "fixmedins"),
    "collusive_ring": ("结伙就医/团伙骗保", "ring"),
    "cross_region": ("异地就医违规", "psn"),
}
# ``line`` is a fee line (bkkp_sn) in the typology; labels name it ``line`` too.
ENTITY_TYPES = ("line", "setl", "mdtrt", "psn", "fixmedins", "prac", "ring")

_EXTRA_CODES = {
    "fixmedins_type": {"hospital": "医院", "clinic": "诊所/基层医疗机构", "pharmacy": "零售药店"},
    "entity_type": {e: e for e in ENTITY_TYPES},
    "fraud_type": {k: v[0] for k in FRAUD_TYPES for v in [FRAUD_TYPES[k]]},
    "label_source": {"simulated": "模拟", "verified_clue": "线索核实", "inspection": "检查"},
}


@lru_cache(maxsize=None)
def _national_codes() -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    path = Path(__file__).parent / "data" / "code_values.csv"
    with path.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            out.setdefault(row["field"], {})[row["code"].strip()] = row["meaning_zh"].strip()
    return out


def code_values(code_set: str) -> dict[str, str]:
    """Valid codes of a code list and their Chinese meaning (national lists plus the project's own)."""
    if code_set in _EXTRA_CODES:
        return dict(_EXTRA_CODES[code_set])
    return dict(_national_codes()[code_set])


def region_name(code: str | None) -> str | None:
    """The Chinese name of a 医保区划 code: its own in the code list, else its province's with the code
    (a county elsewhere in China the list does not name, e.g. a patient insured in another province);
    None for no code or a code of no province.

    >>> region_name("220103"), region_name("440106"), region_name("441302"), region_name("990101")
    ('宽城区', '广州市天河区', '广东省（区划 441302）', None)
    """
    if not code:
        return None
    values = _national_codes()["admdvs"]  # read, not copied: this names every clue of a list
    if code in values:
        return values[code]
    province = values.get(str(code)[:2] + "0000")
    return f"{province}（区划 {code}）" if province else None


def code_meaning(code_set: str, code: str) -> str:
    """Chinese meaning of one code, or the code itself when unknown."""
    return code_values(code_set).get(code, code)
