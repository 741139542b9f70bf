"""Row checks of the ingest (入库校验), written as DuckDB SQL generated from the data contract.

Every check produces *issue rows* with the columns of ``ISSUE_COLUMNS``: the row's 1-based position in
the source (``_row``), the field, a short English ``reason_code``, a finer ``check_id``, the offending
value as text (masked when personal) and a Chinese ``detail``. The ingest turns them into quarantine rows.

Checks that look at one row only (``row_checks``) are plain conditions over the staged columns, so the
ingest can find all suspicious rows in one scan; checks that need other rows (duplicate keys, parents,
settlement totals, refunds) are whole queries.

A staged column can be VARCHAR (CSV is read as text) or typed (Parquet); :class:`Column` hides the
difference: ``text`` is the value as trimmed text, ``value`` the typed value or NULL when it does not
parse.

>>> from features.contract import TABLES
>>> print(Column(TABLES["fee_list_d"].field("hilist_code"), "VARCHAR").text)
NULLIF(trim("hilist_code"), '')
>>> Column(TABLES["fee_list_d"].field("hilist_code"), "DOUBLE").as_float
'("hilist_code" IS NOT NULL)'
>>> sorted(REASONS)[:3]
['bad_certno', 'bad_type', 'broken_encoding']
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from features.codes import FLOAT_CODE_RE as _FLOAT_CODE_RE
from features.contract import TABLES, Field, TableSpec, code_values
from features.pseudonym import certno_valid_sql, mask_certno_sql, mask_name_sql

__all__ = [
    "REASONS",
    "ISSUE_COLUMNS",
    "Column",
    "Check",
    "row_checks",
    "checked_by_value",
    "bad_values_sql",
    "repeated_key_hashes_sql",
    "duplicate_key_sql",
    "missing_parent_values_sql",
    "missing_parent_rows_sql",
    "HELD_REASONS",
    "settlement_lines_sql",
    "settlement_total_sql",
    "negative_fee_sql",
    "mask_column_sql",
    "mask_raw_sql",
    "COARSENED",
    "quote_ident",
    "sql_str",
]

# reason_code -> plain Chinese words; quarantine_counts shows these next to the codes.
REASONS: dict[str, str] = {
    "missing_required": "必填字段为空",
    "bad_type": "类型或格式错误",
    "code_as_float": "编码被读成浮点数",
    "missing_parent": "关联的上级记录不存在（暂存，上级记录到达后自动入库）",
    "parent_held": "上级记录被隔离或整表被拒收（暂存，上级记录入库后自动入库）",
    "sum_mismatch": "金额不平",
    "negative_outside_refund": "非退费结算出现负数",
    "future_date": "时间晚于数据截止时间",
    "unknown_code": "编码不在国家编码表中",
    "broken_encoding": "编码损坏（乱码、非法字节或无法还原的字符）",
    "control_character": "文本含控制字符",
    "bad_certno": "身份证号不合规（校验位错误）",
    "duplicate_key": "主键重复",
    "malformed_line": "CSV 行无法解析",
    "changed_after_load": "主键已入库但内容不同（更正数据，未覆盖；--apply-corrections 可应用）",
}

# A row quarantined for these reasons only is *held* (暂存): it is kept, typed, in the ``held`` schema of
# the warehouse and loaded by a later ingest as soon as every parent it points at is in the warehouse.
HELD_REASONS = ("missing_parent", "parent_held")

ISSUE_COLUMNS = ("_row", "field", "reason_code", "check_id", "value", "detail")

# Columns shown masked wherever a row is echoed (quarantine value, reason and raw row). The contract's
# personal fields plus the identity columns that the national setl_d/mdtrt_d extracts carry as extras.
CERTNO_LIKE = frozenset({"certno", "mdtrt_cert_no", "psn_cert_no", "card_sn"})
OTHER_PERSONAL = frozenset({"psn_name", "coner_name", "tel", "addr", "psn_tel", "psn_addr"})
# Fields the warehouse keeps coarsened (``Field.coarse``): a quarantined row's raw copy shows only what the
# warehouse would keep (the year of a birth date; nothing of an age). The value a check names stays as
# written: a bad date is no birth date, and the person fixing it must see it.
COARSENED = frozenset(f.name for spec in TABLES.values() for f in spec.fields if f.coarse is not None)

_NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                  "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "REAL")
_FLOAT_TYPES = ("FLOAT", "DOUBLE", "REAL")
_TEXT_KINDS = ("id", "code", "text", "flag")
_CODE_KINDS = ("id", "code", "flag")
_KIND_ZH = {
    "amount": ("金额", "数字（元，两位小数）"),
    "number": ("数值", "数字"),
    "int": ("整数", "整数"),
    "datetime": ("时间", "YYYY-MM-DD HH:MM:SS 或 YYYY/MM/DD HH:MM:SS"),
    "date": ("日期", "YYYY-MM-DD 或 YYYY/MM/DD"),
    "month": ("月份", "YYYY-MM"),
}
# Dates and times as Chinese spreadsheets write them: 2024/01/05, 2024/1/5, 2024/01/05 08:30:00.
_SLASHED_DATE_RE = r"[0-9]{4}/[0-9]{1,2}/[0-9]{1,2}"
_SLASHED_DATETIME_RE = _SLASHED_DATE_RE + r" [0-9]{2}:[0-9]{2}:[0-9]{2}"
# U+FFFD, the GBK reading of UTF-8 U+FFFD (锟斤拷), and UTF-8 read as Latin-1/CP1252: a lead byte
# (Â..ô) followed by a continuation byte (U+0080..U+00BF or its CP1252 glyph).
_MOJIBAKE_RE = (
    r"\x{FFFD}|锟斤拷|[\x{C2}-\x{F4}][\x{80}-\x{BF}\x{152}\x{153}\x{160}\x{161}\x{178}\x{17D}\x{17E}"
    r"\x{192}\x{2C6}\x{2DC}\x{2013}\x{2014}\x{2018}-\x{201E}\x{2020}-\x{2022}\x{2026}\x{2030}\x{2039}"
    r"\x{203A}\x{20AC}\x{2122}]"
)
# Control characters other than tab (C0, DEL, C1): never part of a name or a code; a line break or a
# 0x1F inside a value is a broken export and breaks every CSV written from the warehouse.
_CONTROL_RE = r"[\x{0}-\x{8}\x{A}-\x{1F}\x{7F}-\x{9F}]"
# Code points that do not round-trip between systems: private use (GBK user-defined characters and the
# GB18030 private-use mappings: another system shows another glyph or none) and noncharacters.
_NO_ROUNDTRIP_RE = r"[\x{E000}-\x{F8FF}\x{F0000}-\x{10FFFF}\x{FDD0}-\x{FDEF}\x{FFFE}\x{FFFF}]"


def quote_ident(name: str) -> str:
    """SQL identifier, quoted."""
    return '"' + name.replace('"', '""') + '"'


def sql_str(text: str) -> str:
    """SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class Column:
    """A contract field as staged: its SQL for text, typed value and per-kind failures."""

    field: Field
    src_type: str  # DuckDB type of the staged column, e.g. 'VARCHAR', 'DOUBLE', 'TIMESTAMP_NS'
    alias: str = ""  # table alias to prefix the column with, e.g. 's'
    # Whether values may carry leading/trailing spaces. Trimming every value of a 30M-row column is
    # the single most expensive thing the checks do, so the ingest turns it off for columns that have none.
    trim: bool = True
    # Whether the column may hold NULLs; False when the Parquet statistics say it has none, which saves
    # reading the column just to look for them.
    nullable: bool = True

    @property
    def ref(self) -> str:
        name = quote_ident(self.field.name)
        return f"{self.alias}.{name}" if self.alias else name

    @property
    def _is_varchar(self) -> bool:
        return self.src_type.upper() == "VARCHAR"

    @property
    def _is_numeric(self) -> bool:
        t = self.src_type.upper()
        return t in _NUMERIC_TYPES or t.startswith("DECIMAL")

    @property
    def _is_float(self) -> bool:
        t = self.src_type.upper()
        if t in _FLOAT_TYPES:
            return True
        if t.startswith("DECIMAL"):
            # DECIMAL(p,s): a code stored with a scale was a number at some point.
            inner = t[t.find("(") + 1: t.find(")")].split(",") if "(" in t else []
            return len(inner) == 2 and int(inner[1]) > 0
        return False

    @property
    def _is_timestamp(self) -> bool:
        return self.src_type.upper().startswith("TIMESTAMP")

    @property
    def _is_date(self) -> bool:
        return self.src_type.upper() == "DATE"

    @property
    def _clean(self) -> str:
        if self._is_varchar:
            return f"trim({self.ref})" if self.trim else self.ref
        return f"CAST({self.ref} AS VARCHAR)"

    @property
    def text(self) -> str:
        """The value as text, trimmed; NULL when missing or empty."""
        return f"NULLIF({self._clean}, '')"

    @property
    def is_missing(self) -> str:
        """Condition: no value (NULL, or empty text)."""
        # Same as ``text IS NULL``, without building a NULLIF result for every row.
        if self._is_varchar:
            return f"({self.ref} IS NULL OR {self._clean} = '')" if self.nullable else f"({self._clean} = '')"
        return f"({self.ref} IS NULL)" if self.nullable else "false"

    @property
    def padded(self) -> str | None:
        """Condition: a text value with leading or trailing spaces (then the column must be trimmed)."""
        if not self._is_varchar:
            return None
        return f"(prefix({self.ref}, ' ') OR suffix({self.ref}, ' '))"

    @property
    def maybe_padded(self) -> str | None:
        """A cheaper condition that holds whenever ``padded`` does: any space at all, for the kinds
        whose values normally have none (one substring search instead of two tests)."""
        if not self._is_varchar:
            return None
        if self.field.kind in ("text", "datetime"):
            return self.padded
        return f"contains({self.ref}, ' ')"

    @property
    def shown(self) -> str:
        """The value as text for messages: masked when personal, never NULL."""
        return f"coalesce({mask_column_sql(self.field.name, self.text)}, '')"

    @property
    def value(self) -> str:
        """The typed value (type ``field.sql_type``); NULL when missing or unparseable."""
        kind, t = self.field.kind, self.text
        if kind in _TEXT_KINDS:
            return t
        if kind == "amount":
            src = self.ref if self._is_numeric else t
            return f"TRY_CAST({src} AS DECIMAL(18,2))"
        if kind == "number":
            d = f"TRY_CAST({self.ref if self._is_numeric else t} AS DOUBLE)"
            return f"CASE WHEN isfinite({d}) THEN {d} END"
        if kind == "int":
            d = f"TRY_CAST({self.ref if self._is_numeric else t} AS DOUBLE)"
            return f"CASE WHEN {d} = trunc({d}) AND abs({d}) < 2147483648 THEN CAST({d} AS INTEGER) END"
        if kind == "datetime":
            if self._is_timestamp or self._is_date:
                return f"CAST({self.ref} AS TIMESTAMP)"
            # The contract's form first (no regex on it); the slashed form of Chinese spreadsheets second.
            return (f"CASE WHEN length({t}) = 19 AND NOT contains({t}, '/') THEN try_strptime({t}, '%Y-%m-%d %H:%M:%S') "
                    f"WHEN contains({t}, '/') AND regexp_full_match({t}, {sql_str(_SLASHED_DATETIME_RE)}) "
                    f"THEN try_strptime({t}, '%Y/%m/%d %H:%M:%S') END")
        if kind == "date":
            if self._is_timestamp or self._is_date:
                return f"CAST({self.ref} AS DATE)"
            return (f"CASE WHEN length({t}) = 10 AND NOT contains({t}, '/') THEN CAST(try_strptime({t}, '%Y-%m-%d') AS DATE) "
                    f"WHEN contains({t}, '/') AND regexp_full_match({t}, {sql_str(_SLASHED_DATE_RE)}) "
                    f"THEN CAST(try_strptime({t}, '%Y/%m/%d') AS DATE) END")
        if kind == "month":
            if self._is_timestamp or self._is_date:
                return f"strftime({self.ref}, '%Y-%m')"
            return (
                f"CASE WHEN regexp_full_match({t}, '[0-9]{{4}}-(0[1-9]|1[0-2])') THEN {t} "
                f"WHEN regexp_full_match({t}, '[0-9]{{4}}(0[1-9]|1[0-2])') THEN left({t}, 4) || '-' || right({t}, 2) END"
            )
        raise ValueError(f"unknown field kind {kind!r}")

    @property
    def key_text(self) -> str:
        """Normalised text used for keys (the typed value for months, else the text); NULL when empty."""
        return self.value if self.field.kind == "month" else self.text

    @property
    def join_text(self) -> str:
        """Equal to ``key_text`` wherever that is not NULL, and cheaper: for equality joins."""
        return self.value if self.field.kind == "month" else self._clean

    @property
    def bad_type(self) -> str | None:
        """Condition: a value is present but does not parse as the field's kind."""
        kind = self.field.kind
        if kind in _TEXT_KINDS:
            return None
        if (self._is_timestamp or self._is_date) and kind in ("datetime", "date", "month"):
            return None  # a typed time or date always converts
        if self.src_type.upper() in _FLOAT_TYPES and kind in ("amount", "number"):
            # The same conditions as ``value`` IS NULL, without the cast: DECIMAL(18,2) holds any float
            # below 1e16 in size (the next float down is 1e16 - 2); NaN (which DuckDB sorts above every
            # number) and infinities fail both.
            if kind == "amount":
                return f"(NOT (abs({self.ref}) < 1e16))"
            return f"(NOT isfinite({self.ref}))"
        if self._is_numeric or self._is_timestamp or self._is_date:
            # Such a value is present exactly when it is not NULL: no need to format it as text first.
            return f"({self.ref} IS NOT NULL AND {self.value} IS NULL)"
        return f"({self.text} IS NOT NULL AND {self.value} IS NULL)"

    @property
    def as_float(self) -> str | None:
        """Condition: a code or id that looks like a float ('1.1020e+12', '310.0')."""
        if self.field.kind not in _CODE_KINDS:
            return None
        if self._is_float:
            return f"({self.ref} IS NOT NULL)"
        if not self._is_varchar:
            return None
        # The cheap substring tests first, so that the regex runs on a handful of rows only. Float
        # spellings have a '.' or an exponent with a sign ('1e+16' from Python, '1.1E+12' from Excel).
        r = self.ref
        return (
            f"((contains({r}, '.') OR contains({r}, '+')) "
            f"AND regexp_full_match({self.text}, {sql_str(_FLOAT_CODE_RE)}))"
        )

    def float_like(self, text: str) -> str | None:
        """``as_float`` of a value given by other SQL, ``text`` (its ``text`` or ``key_text``)."""
        if self.field.kind not in _CODE_KINDS:
            return None
        if self._is_float:
            return f"({text} IS NOT NULL)"
        if not self._is_varchar:
            return None
        return (
            f"((contains({text}, '.') OR contains({text}, '+')) "
            f"AND regexp_full_match({text}, {sql_str(_FLOAT_CODE_RE)}))"
        )

    @property
    def control(self) -> str | None:
        """Condition: a text, code or flag value holds a control character other than tab.

        Ids are not scanned (a regular expression over every id of 10M fee lines costs more than all
        other one-row checks); an id carrying one matches no parent and no code list.
        """
        if not self._is_varchar or self.field.kind not in ("text", "code", "flag"):
            return None
        return f"regexp_matches({self.ref}, {sql_str(_CONTROL_RE)})"

    @property
    def no_roundtrip(self) -> str | None:
        """Condition: a text, code or flag value holds a private-use code point or a noncharacter
        (for codes also U+FFFD; in names that is ``broken``'s)."""
        if not self._is_varchar or self.field.kind not in ("text", "code", "flag"):
            return None
        pattern = _NO_ROUNDTRIP_RE if self.field.kind == "text" else _NO_ROUNDTRIP_RE[:-1] + r"\x{FFFD}]"
        return f"regexp_matches({self.ref}, {sql_str(pattern)})"

    @property
    def broken(self) -> str | None:
        """Condition: a text field (names, not codes) carries U+FFFD or typical mojibake.

        Codes and ids are ASCII; a garbled one already fails its code list or parent check, and
        scanning every id for U+FFFD would cost more than all the other one-row checks together.
        """
        if not self._is_varchar or self.field.kind != "text":
            return None
        return f"regexp_matches({self.ref}, {sql_str(_MOJIBAKE_RE)})"


@dataclass(frozen=True)
class Check:
    """One row-local check: a condition over the staged columns and what to say when it holds."""

    field: str
    reason_code: str
    check_id: str
    when: str  # SQL condition
    value: str  # SQL VARCHAR: the offending value as shown
    detail: str  # SQL VARCHAR: plain Chinese words, including the value
    value_only: bool = False  # ``when`` depends on the value of ``field`` alone

    def select_sql(self, relation: str) -> str:
        """Issue rows of this check over ``relation`` (which has ``_row`` and the staged columns)."""
        return (
            f"SELECT _row, {sql_str(self.field)} AS field, {sql_str(self.reason_code)} AS reason_code, "
            f"{sql_str(self.check_id)} AS check_id, {self.value} AS value, {self.detail} AS detail "
            f"FROM {relation} WHERE {self.when}"
        )


def mask_column_sql(name: str, expr: str) -> str:
    """``expr`` masked when the column ``name`` holds personal data; unchanged otherwise."""
    if name in CERTNO_LIKE:
        return mask_certno_sql(expr)
    if name in OTHER_PERSONAL:
        return mask_name_sql(expr)
    return expr


def mask_raw_sql(name: str, expr: str) -> str:
    """``expr`` (VARCHAR) of column ``name`` as a quarantined row's raw copy shows it: personal data masked
    (:func:`mask_column_sql`), a coarsened field (``COARSENED``) cut to the year or starred out."""
    if name in COARSENED:
        keeps_year = any(f.coarse.column for spec in TABLES.values() for f in spec.fields if f.name == name
                         and f.coarse is not None)
        masked = f"left({expr}, 4) || '-**-**'" if keeps_year else "'**'"
        return f"CASE WHEN {expr} IS NULL THEN NULL ELSE {masked} END"
    return mask_column_sql(name, expr)


def row_checks(spec: TableSpec, columns: dict[str, Column], *, as_of: datetime) -> list[Check]:
    """All checks of ``spec`` that look at one row at a time, for the staged ``columns``.

    ``as_of`` is the moment after which a time is a future date.
    """
    checks: list[Check] = []
    for f in spec.fields:
        c = columns.get(f.name)
        if c is None:
            continue
        checks.extend(_field_checks(spec, c, as_of))
    checks.extend(_table_checks(spec, columns))
    return checks


def checked_by_value(column: Column) -> bool:
    """Whether the one-row checks of ``column`` are best run on its distinct values: codes, flags and
    names, which take a few hundred or thousand distinct values over millions of rows (DuckDB lists the
    distinct values of such a Parquet column almost for free). Not ids, and not personal fields."""
    return column._is_varchar and column.field.kind in ("code", "flag", "text") and not column.field.personal


def bad_values_sql(checks: list[Check], columns: dict[str, Column], lists: str) -> str | None:
    """The distinct values of the ``checked_by_value`` columns that fail a one-field check or carry
    leading/trailing spaces, as rows (``col``, ``v``); ``lists`` has one row with, per such column, the
    list of its distinct values (under the column's name). NULLs are not in the lists: a missing
    required value is still found row by row."""
    parts = []
    for name, c in columns.items():
        if not checked_by_value(c):
            continue
        conds = [f"({k.when})" for k in checks if k.value_only and k.field == name] + [c.padded]
        col = quote_ident(name)
        parts.append(f"SELECT {sql_str(name)} AS col, {col} AS v FROM (SELECT unnest({col}) AS {col} FROM {lists}) "
                     f"WHERE {' OR '.join(conds)}")
    return " UNION ALL ".join(parts) or None


def repeated_key_hashes_sql(spec: TableSpec, relation: str, columns: dict[str, Column]) -> str:
    """The 64-bit hashes (column ``h``) that the keys of more than one row of ``relation`` have.

    Sorting hashes and comparing neighbours is much cheaper than grouping the key strings (or even the
    hashes) of millions of distinct keys. Equal keys have equal hashes, so when this is empty no key
    repeats; otherwise ``duplicate_key_sql`` compares the real keys of the rows with these hashes (two
    different keys with one hash are not duplicates).
    """
    keys = [columns[k].key_text for k in spec.key]
    not_null = " AND ".join(f"{k} IS NOT NULL" for k in keys)
    return f"""
        SELECT DISTINCT h FROM (
            SELECT h, lead(h) OVER (ORDER BY h) AS next_h
            FROM (SELECT hash({', '.join(keys)}) AS h FROM {relation} WHERE {not_null}))
        WHERE h = next_h"""


def duplicate_key_sql(
    spec: TableSpec, relation: str, columns: dict[str, Column], *, candidates: str | None = None
) -> str:
    """Issue rows for every repeat of a key inside the extract; the first occurrence is kept.

    ``candidates``: a relation of ``repeated_key_hashes_sql`` (``h``); only rows with one of them are compared.
    """
    keys = [columns[k].key_text for k in spec.key]
    names = [f"k{i}" for i in range(len(keys))]
    select_keys = ", ".join(f"{k} AS {n}" for k, n in zip(keys, names))
    not_null = " AND ".join(f"{k} IS NOT NULL" for k in keys)
    if candidates:
        not_null += f" AND hash({', '.join(keys)}) IN (SELECT h FROM {candidates})"
    key_str = " || '|' || ".join(f"k.{n}" for n in names)
    field = "|".join(spec.key)
    return f"""
        WITH k AS (SELECT _row, {select_keys} FROM {relation} WHERE {not_null}),
        d AS (SELECT {", ".join(names)}, min(_row) AS first_row FROM k GROUP BY ALL HAVING count(*) > 1)
        SELECT k._row, {sql_str(field)} AS field, 'duplicate_key' AS reason_code, 'duplicate_key' AS check_id,
               {key_str} AS value,
               '键 ' || {key_str} || ' 重复，首次出现在第' || d.first_row || '行' AS detail
        FROM k JOIN d USING ({", ".join(names)})
        WHERE k._row > d.first_row"""


def missing_parent_values_sql(column: Column, candidates: str, lookups: list[tuple[str, str]]) -> str:
    """The distinct values (column ``v``) of the query ``candidates`` found in none of the parent
    ``lookups``. Codes that look like floats are left to ``code_as_float``.

    Each lookup is (relation, SQL of the parent key over alias ``p``), e.g. ``("main.setl_d", 'p."setl_id"')``.
    The lookups run first and the rarely needed DISTINCT and float test on what they leave.
    """
    is_float = column.float_like("v")
    # MATERIALIZED: else DuckDB runs the float test before the lookups, on every row.
    return f"""
        WITH m AS MATERIALIZED (SELECT v FROM ({candidates}) s WHERE v IS NOT NULL AND {_not_in(lookups)})
        SELECT DISTINCT v FROM m{f" WHERE NOT coalesce({is_float}, false)" if is_float else ""}"""


def missing_parent_rows_sql(
    spec: TableSpec, field: str, relation: str, columns: dict[str, Column], parent: TableSpec, missing: str,
    *, held: str | None = None, held_why: str | None = None,
) -> str:
    """Issue rows of ``relation`` whose ``field`` is one of the ``missing`` values
    (``missing_parent_values_sql``): not in the warehouse's ``parent`` table.

    Such a row is held (暂存) either way. Its reason is ``parent_held`` when the parent is known to be
    held back: its key is in ``held`` (a relation of ``k``, the parent key, and ``why``, the words saying
    what happened to it), or, with ``held_why`` (SQL text), for every missing value (a parent table
    refused as a whole). Otherwise it is ``missing_parent``: the parent is nowhere.
    """
    c = columns[field]
    if held_why is not None:
        why, join = held_why, ""
    elif held is not None:
        why, join = "h.why", f"LEFT JOIN (SELECT k, any_value(why) AS why FROM {held} GROUP BY k) h ON h.k = m.v"
    else:
        why, join = "NULL", ""
    return f"""
        WITH m AS (SELECT _row, {c.key_text} AS v FROM {relation} WHERE {c.key_text} IN (SELECT v FROM {missing}))
        {_parent_issues(spec, field, parent, why)}
        FROM m {join}"""


def _not_in(lookups: list[tuple[str, str]]) -> str:
    # NOT IN over non-NULL keys is the same anti-join as a correlated NOT EXISTS, and DuckDB runs it
    # several times faster.
    if not lookups:
        return "true"
    return " AND ".join(f"s.v NOT IN (SELECT {expr} FROM {rel} p WHERE {expr} IS NOT NULL)" for rel, expr in lookups)


def _parent_issues(spec: TableSpec, field: str, parent: TableSpec, why: str) -> str:
    """SELECT list of parent issue rows over ``m`` (``_row``, ``v``); ``why`` is SQL of what happened to
    a held parent (NULL: the parent is missing)."""
    label = f"{parent.name}（{parent.label_zh}）"
    field_zh = spec.field(field).label_zh
    return f"""SELECT m._row, {sql_str(field)} AS field,
               CASE WHEN {why} IS NULL THEN 'missing_parent' ELSE 'parent_held' END AS reason_code,
               {sql_str("parent:" + parent.name)} AS check_id, m.v AS value,
               {sql_str(field_zh)} || ' ' || m.v || CASE WHEN {why} IS NULL
                   THEN {sql_str(f" 在 {label} 中不存在（本批数据和仓库里都没有）；本行暂存，上级记录到达后自动入库")}
                   ELSE {sql_str(f" 对应的 {label} 记录")} || {why}
                        || '；本行暂存，上级记录入库后自动入库' END AS detail"""


def settlement_lines_sql(
    setl_relation: str,
    setl_columns: dict[str, Column],
    fee_relation: str,
    fee_columns: dict[str, Column],
    *,
    fee_duplicates: str | None,
) -> str:
    """The settlement keys (``setl_id``) of the fee lines that need a second look: those with no
    settlement in the extract (``_row`` NULL), and the settlements of the extract (``_row``, amount
    ``amt``) whose amount is not the total of their lines (``total``, ``n`` lines, ``n_ok`` of them with
    a parseable amount; each repeated fee line, ``fee_duplicates``, a relation of ``_row`` or None when
    there are none, counted once).

    ``settlement_total_sql`` reports the second kind; the first are the only fee-line settlement keys
    that the missing-parent check still has to look up. Tolerance: max(0.01, 0.005 per line) yuan, for
    rounding per line; a settlement with an unparseable line amount is not compared.
    """
    fs, fa = fee_columns["setl_id"], fee_columns["det_item_fee_sumamt"]
    ss, sm = setl_columns["setl_id"], setl_columns["medfee_sumamt"]
    repeated = f" AND _row NOT IN (SELECT _row FROM {fee_duplicates})" if fee_duplicates else ""
    return f"""
        WITH l AS (
            SELECT {fs.key_text} AS setl_id, sum({fa.value}) AS total, count(*) AS n, count({fa.value}) AS n_ok
            FROM {fee_relation}
            WHERE {fs.key_text} IS NOT NULL{repeated}
            GROUP BY 1
        ), s AS (
            SELECT _row, {ss.key_text} AS setl_id, {sm.value} AS amt FROM {setl_relation} WHERE {ss.key_text} IS NOT NULL
        )
        SELECT l.*, s._row, s.amt FROM l LEFT JOIN s USING (setl_id)
        WHERE s._row IS NULL
           OR (l.n = l.n_ok AND s.amt IS NOT NULL AND abs(s.amt - l.total) > greatest(0.01, 0.005 * l.n))"""


def settlement_total_sql(lines: str, *, unreadable_setl_ids: str | None = None) -> str:
    """Issue rows of settlements whose ``medfee_sumamt`` is not the sum of their fee lines.

    ``lines`` is a relation of ``settlement_lines_sql``. Only settlements with fee lines in the extract
    are compared; a settlement named in ``unreadable_setl_ids`` (a query of ``setl_id``: fee lines that
    could not be read at all) is skipped.
    """
    skip = ""
    if unreadable_setl_ids:
        skip = f"\n          AND s.setl_id NOT IN (SELECT setl_id FROM ({unreadable_setl_ids}) WHERE setl_id IS NOT NULL)"
    return f"""
        SELECT s._row, 'medfee_sumamt' AS field, 'sum_mismatch' AS reason_code, 'sum_fee_lines' AS check_id,
               CAST(s.amt AS VARCHAR) AS value,
               '医疗费总额 ' || s.amt || ' ≠ 费用明细合计 ' || s.total || '（' || s.n || ' 条明细，差 '
                   || (s.amt - s.total) || '）' AS detail
        FROM {lines} s
        WHERE s._row IS NOT NULL{skip}"""


def negative_fee_sql(
    fee_relation: str,
    fee_columns: dict[str, Column],
    *,
    setl_relation: str | None,
    setl_columns: dict[str, Column] | None,
    setl_warehouse: str | None,
) -> str:
    """Issue rows of fee lines with a negative count or amount whose settlement is not a refund.

    The settlement is looked up in the extract (first occurrence) and then the warehouse; a line whose
    settlement is found in neither is left to the missing-parent check.
    """
    fs, fc, fa = fee_columns["setl_id"], fee_columns["cnt"], fee_columns["det_item_fee_sumamt"]
    lookups, joins, found, flag = [], [], [], []
    if setl_relation is not None and setl_columns is not None:
        ss, sr = setl_columns["setl_id"], setl_columns["refd_setl_flag"]
        lookups.append(f"""e AS (
            SELECT {ss.key_text} AS setl_id, arg_min({sr.text}, _row) AS refd, true AS hit FROM {setl_relation}
            WHERE {ss.key_text} IN (SELECT setl_id FROM neg) GROUP BY 1)""")
        joins.append("LEFT JOIN e ON e.setl_id = neg.setl_id")
        found.append("e.hit")
        flag.append("e.refd")
    if setl_warehouse is not None:
        lookups.append(f"""w AS (
            SELECT setl_id, any_value(refd_setl_flag) AS refd, true AS hit FROM {setl_warehouse}
            WHERE setl_id IN (SELECT setl_id FROM neg) GROUP BY 1)""")
        joins.append("LEFT JOIN w ON w.setl_id = neg.setl_id")
        found.append("w.hit")
        flag.append("w.refd")
    if not lookups:
        return ("SELECT * FROM (SELECT NULL::BIGINT AS _row, '' AS field, '' AS reason_code, '' AS check_id, "
                "'' AS value, '' AS detail) WHERE false")
    refd = f"coalesce({', '.join(flag)}, '')"
    parts = []
    for name, zh in (("cnt", "数量"), ("det_item_fee_sumamt", "明细项目费用总额")):
        parts.append(f"""
            SELECT _row, {sql_str(name)} AS field, 'negative_outside_refund' AS reason_code,
                   {sql_str("negative:" + name)} AS check_id, CAST({name} AS VARCHAR) AS value,
                   {sql_str(zh)} || '为负数 (' || {name} || ')，但所属结算 ' || setl_id
                       || ' 不是退费结算（refd_setl_flag=' || CASE WHEN refd = '' THEN '空' ELSE refd END || '）' AS detail
            FROM v WHERE {name} < 0""")
    return f"""
        WITH neg AS (
            SELECT _row, {fs.key_text} AS setl_id, {fc.value} AS cnt, {fa.value} AS det_item_fee_sumamt
            FROM {fee_relation} WHERE {fc.value} < 0 OR {fa.value} < 0
        ), {", ".join(lookups)},
        v AS (
            SELECT neg.*, {refd} AS refd FROM neg {" ".join(joins)}
            WHERE coalesce({", ".join(found)}, false) AND {refd} <> '1'
        )
        {" UNION ALL ".join(parts)}"""


# -- private helpers ------------------------------------------------------------------------------


def _field_checks(spec: TableSpec, c: Column, as_of: datetime) -> list[Check]:
    f = c.field
    out: list[Check] = []
    if f.required:
        out.append(Check(f.name, "missing_required", "required", c.is_missing, "CAST(NULL AS VARCHAR)",
                         sql_str(f"{f.label_zh or f.name}为空（必填字段）")))
    if c.bad_type:
        kind_zh, fmt = _KIND_ZH[f.kind]
        out.append(Check(
            f.name, "bad_type", f"type:{f.kind}", c.bad_type, c.shown,
            f"{sql_str(f'{f.label_zh}无法解析为{kind_zh} (')} || {c.shown} || {sql_str(f')，应为 {fmt}')}",
        ))
    if c.as_float:
        out.append(Check(f.name, "code_as_float", "code_as_float", c.as_float, c.shown,
                         f"'编码被读成浮点数 (' || {c.shown} || ')，应为字符串编码'"))
    if f.code_set and f.kind in _CODE_KINDS:
        codes = sorted(code_values(f.code_set))
        listed = ", ".join(sql_str(x) for x in codes)
        not_float = f" AND NOT coalesce({c.as_float}, false)" if c.as_float else ""
        out.append(Check(
            f.name, "unknown_code", f"code_set:{f.code_set}",
            f"({c.text} IS NOT NULL AND {c.text} NOT IN ({listed}){not_float})", c.shown,
            f"{sql_str(f.label_zh + '编码 ')} || {c.shown} || {sql_str(f' 不在编码表 {f.code_set} 中')}",
        ))
    if c.broken:
        out.append(Check(f.name, "broken_encoding", "mojibake", c.broken, c.shown,
                         f"'文本编码损坏，疑似乱码 (' || {c.shown} || ')'"))
    if c.control:
        shown = f"regexp_replace({c.shown}, {sql_str(_CONTROL_RE)}, '?', 'g')"
        first = f"printf('U+%04X', unicode(regexp_extract({c.ref}, {sql_str(_CONTROL_RE)})))"
        out.append(Check(f.name, "control_character", "control_character", c.control, shown,
                         f"'含控制字符 ' || {first} || '（除制表符外不允许；显示为 ?）: ' || {shown}"))
    if c.no_roundtrip:
        out.append(Check(f.name, "broken_encoding", "no_roundtrip", c.no_roundtrip, c.shown,
                         f"'含私用区或非字符码位，换一个系统无法还原 (' || {c.shown} || ')'"))
    if f.name in spec.time_fields:
        if f.kind == "date":
            limit = f"DATE '{as_of.date().isoformat()}'"
        else:
            limit = f"TIMESTAMP '{as_of.isoformat(sep=' ', timespec='seconds')}'"
        shown_limit = as_of.strftime("%Y-%m-%d %H:%M:%S") if f.kind != "date" else as_of.date().isoformat()
        out.append(Check(
            f.name, "future_date", "future_date", f"({c.value} > {limit})", c.shown,
            f"{sql_str(f.label_zh + ' ')} || {c.shown} || {sql_str(f' 晚于数据截止时间 {shown_limit}')}",
        ))
    return [replace(k, value_only=True) for k in out]


def _table_checks(spec: TableSpec, columns: dict[str, Column]) -> list[Check]:
    have = columns.__contains__
    out: list[Check] = []
    if spec.name == "setl_d" and all(map(have, ("medfee_sumamt", "fund_pay_sumamt", "psn_pay"))):
        m, fnd, p = (columns[n].value for n in ("medfee_sumamt", "fund_pay_sumamt", "psn_pay"))
        out.append(Check(
            "medfee_sumamt", "sum_mismatch", "sum_fund_psn",
            f"(abs({m} - ({fnd} + {p})) > 0.01)", f"CAST({m} AS VARCHAR)",
            f"'医疗费总额 ' || {m} || ' ≠ 基金支付总额 ' || {fnd} || ' + 个人负担总金额 ' || {p} "
            f"|| '（差 ' || ({m} - ({fnd} + {p})) || '）'",
        ))
    if spec.name == "setl_d" and have("medfee_sumamt") and have("refd_setl_flag"):
        m, r = columns["medfee_sumamt"].value, columns["refd_setl_flag"].text
        out.append(Check(
            "medfee_sumamt", "negative_outside_refund", "negative:medfee_sumamt",
            f"({m} < 0 AND coalesce({r}, '') <> '1')", f"CAST({m} AS VARCHAR)",
            f"'医疗费总额为负数 (' || {m} || ')，但不是退费结算（refd_setl_flag=' || coalesce({r}, '空') || '）'",
        ))
    if spec.name == "fee_list_d" and all(map(have, ("cnt", "pric", "det_item_fee_sumamt"))):
        n, p, a = (columns[x].value for x in ("cnt", "pric", "det_item_fee_sumamt"))
        expected = f"round({n} * CAST({p} AS DOUBLE), 2)"
        out.append(Check(
            "det_item_fee_sumamt", "sum_mismatch", "sum_cnt_pric",
            f"(abs(CAST({a} AS DOUBLE) - {expected}) > 0.01 + 1e-9)", f"CAST({a} AS VARCHAR)",
            f"'明细项目费用总额 ' || {a} || ' ≠ 数量 ' || {n} || ' × 单价 ' || {p} || ' = ' "
            f"|| printf('%.2f', {expected})",
        ))
    if spec.name == "labels" and have("label"):
        # A verified-clean outcome (label 0) may name no typology; a confirmed one must.
        t, lab = columns.get("fraud_type"), columns["label"].value
        out.append(Check(
            "fraud_type", "missing_required", "required_when_positive",
            f"({lab} = 1 AND {t.is_missing if t else 'true'})", "CAST(NULL AS VARCHAR)",
            sql_str("违规类型为空：label = 1（认定违规）的标签必须注明违规类型"),
        ))
    if spec.name == "psn_info" and have("certno"):
        c = columns["certno"]
        norm = f"upper({c.text})"
        out.append(Check(
            "certno", "bad_certno", "certno_check_digit",
            f"({c.text} IS NOT NULL AND NOT {certno_valid_sql(norm)})", c.shown,
            f"'居民身份证号 ' || {c.shown} || ' 不是18位或校验位错误（GB 11643）'",
        ))
    return out
