"""The rule config (规则配置): which rules run, with which thresholds, on which policy basis.

``models/rules/rules.yaml`` is read once, at the edge, into frozen objects. A rule is data (this
config entry) plus one SQL file in ``models/rules/sql/``; its id, version, typology id, policy basis
(政策依据) and severity travel with every hit. Thresholds live here, never in code: each entry of a
rule's ``params`` becomes a named parameter ``$name`` of its SQL.

A malformed config raises :class:`RuleConfigError`, which names the file, the line, the rule id and
the field.

>>> config = load_config()
>>> rule = config.rule("split_admission")
>>> rule.typology_id, rule.params["max_gap_days"]
('split_admission', 15)
>>> sorted({r.typology_id for r in config.rules}) == sorted(DETERMINISTIC_TYPOLOGY_IDS)
True
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Mapping

import yaml

from features.contract import FRAUD_TYPES

__all__ = [
    "DEFAULT_CONFIG",
    "SQL_DIR",
    "DETERMINISTIC_TYPOLOGY_IDS",
    "SEVERITIES",
    "RuleConfigError",
    "Rule",
    "RuleConfig",
    "load_config",
    "config_from_text",
    "set_enabled",
    "sql_params",
]

DEFAULT_CONFIG = Path(__file__).resolve().parent / "rules.yaml"
SQL_DIR = Path(__file__).resolve().parent / "sql"
SEVERITIES = {"high": "高", "medium": "中", "low": "低"}
# The typology ids whose signal a deterministic rule can read off the claims (issue 3).
DETERMINISTIC_TYPOLOGY_IDS = (
    "dead_person", "gender_age_limit", "insurance_type_limit", "care_setting_limit", "institution_level_limit",
    "course_length_limit", "duplicate_charge", "frequency_limit", "unbundled_surgery", "price_over_cap",
    "split_admission", "bed_hold", "over_prescription", "card_theft", "third_party_liability", "vbp_noncompliance",
    # institution schemes (issue 16): batch rules over a period
    "drug_substitution", "phantom_purchase", "over_examination", "fake_treatment",
)

_ID = re.compile(r"[a-z][a-z0-9_]{1,60}")
_CODE = re.compile(r"[0-9A-Za-z.]{1,20}")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_RULE_KEYS = {"id", "name_zh", "typology_id", "enabled", "version", "severity", "realtime", "basis_zh",
              "message_zh", "sql", "params", "precheck_when"}
_REQUIRED_RULE_KEYS = ("id", "name_zh", "typology_id", "version", "severity", "basis_zh", "message_zh")
_TOP_KEYS = {"config_version", "history_days", "codes", "rules", "deduction_typologies"}
_CODE_KEYS = {"hosp_level", "clinic_level", "pharmacy_level", "inpatient_med_types", "emergency_med_types"}
# precheck_when: necessary conditions on a visit for a rule to be worth running on it (see Rule.precheck_when).
PRECHECK_CONDITIONS = {
    "med_type": "the settlement's med_type is one of these (codes, a $param, or inpatient / emergency)",
    "med_type_not": "the settlement's med_type is none of these (same forms as med_type)",
    "line": "some fee line has all of: in_pack (a code of the 两库 pack rows of these rule kinds), "
            "list_type (one of these), prd_days_over (days supply above this), price_cap (a price cap)",
    "prd_days_total": "the fee lines that meet `line` have at least this many days supply (prd_days) together "
                      "(a number or a $param)",
    "diag_prefix": "some diagnosis code starts with one of these (prefixes or a $param)",
    "person_died": "the person register has a death date",
    "history_med_type": "the person has a settlement of one of these med_types in the look-back before the visit "
                        "(same forms as med_type)",
}
PRECHECK_LINE_CONDITIONS = ("in_pack", "list_type", "prd_days_over", "price_cap")


class RuleConfigError(ValueError):
    """A malformed rule config: names the file, line, rule id and field."""

    def __init__(self, file: Path | str, message: str, *, rule_id: str | None = None, field: str | None = None,
                 line: int | None = None):
        self.file, self.rule_id, self.field, self.line = str(file), rule_id, field, line
        where = [self.file + (f":{line}" if line else "")]
        if rule_id:
            where.append(f"规则 rule {rule_id}")
        if field:
            where.append(f"字段 field {field}")
        super().__init__(f"{', '.join(where)}: {message}")


@dataclass(frozen=True)
class Rule:
    """One rule: the config entry; its SQL is ``sql_path``."""

    id: str
    name_zh: str
    typology_id: str
    version: str
    severity: str
    basis_zh: str
    message_zh: str
    sql_path: Path
    enabled: bool = True
    realtime: bool = True  # also run by precheck (事前提醒/事中审核); institution-level rules are batch only
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    line: int | None = None  # where the entry starts in the config file
    # Necessary conditions on a visit for the rule to fire on it (PRECHECK_CONDITIONS): precheck skips the
    # rule on a visit that fails one. An optimisation only, never the rule itself: empty = always run.
    precheck_when: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def placeholders(self) -> tuple[str, ...]:
        """Names used as ``{name}`` in the message template (fields of the SQL's ``detail``)."""
        return tuple(dict.fromkeys(_PLACEHOLDER.findall(self.message_zh)))

    @property
    def sql(self) -> str:
        return self.sql_path.read_text(encoding="utf-8")

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name_zh": self.name_zh, "typology_id": self.typology_id,
                "typology_zh": FRAUD_TYPES[self.typology_id][0], "version": self.version,
                "severity": self.severity, "enabled": self.enabled, "realtime": self.realtime,
                "basis_zh": self.basis_zh, "message_zh": self.message_zh, "sql": self.sql_path.name,
                "params": dict(self.params), "precheck_when": _plain(self.precheck_when)}


@dataclass(frozen=True)
class RuleConfig:
    """The whole rule config: shared code lists and the rules, in file order."""

    path: Path
    sha256: str
    config_version: str
    history_days: int
    hosp_level: Mapping[str, int]  # national hosp_lv code -> level 3/2/1/0
    clinic_level: int
    pharmacy_level: int
    inpatient_med_types: tuple[str, ...]
    emergency_med_types: tuple[str, ...]
    rules: tuple[Rule, ...]
    # Typologies whose hits are claim edits settled by deduction (审核扣款): each hit names the lines, so no
    # investigation is needed to recover them. They are evidence on a clue, but do not make one, nor its
    # amount at risk (models.screening); the others call for verification (线索核查).
    deduction_typologies: frozenset[str] = frozenset()

    @property
    def enabled_rules(self) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.enabled)

    def rule(self, rule_id: str) -> Rule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(f"未知规则 (unknown rule) {rule_id!r}; known: {', '.join(r.id for r in self.rules)}")

    def staging_values(self) -> dict[str, str]:
        """The code sets as SQL fragments for the feature staging (``features/sql/_stage.sql``), so that the
        features class institutions and visits as the rules do: one place for these facts."""
        levels = sorted({lv for lv in self.hosp_level.values() if lv}, reverse=True)
        case = " ".join(f"WHEN hosp_lv IN ({_sql_list(c for c, lv in sorted(self.hosp_level.items()) if lv == level)}) "
                        f"THEN {level}" for level in levels)
        return {"hosp_level_case": f"CASE {case} ELSE 0 END" if levels else "0",
                "inpatient_med_types": _sql_list(self.inpatient_med_types),
                "emergency_med_types": _sql_list(self.emergency_med_types)}

    def code_rows(self) -> list[tuple[str, str, str]]:
        """(code_set, code, value) rows of the ``rule_codes`` table the SQL joins."""
        rows = [("hosp_level", code, str(level)) for code, level in sorted(self.hosp_level.items())]
        rows += [("med_type_class", c, "inpatient") for c in self.inpatient_med_types]
        rows += [("med_type_class", c, "emergency") for c in self.emergency_med_types]
        rows += [("institution_type_level", "clinic", str(self.clinic_level)),
                 ("institution_type_level", "pharmacy", str(self.pharmacy_level))]
        return rows


def active_config(settings=None) -> RuleConfig:
    """The rule config in force: the user copy (``Settings.rules_config``: ``data/rules.yaml`` or
    ``YIBAO_RULES_CONFIG``) where it exists, else the committed one. ``settings`` default: read as
    ``features.config.load_settings`` reads them."""
    if settings is None:
        from features.config import load_settings

        settings = load_settings()
    user = Path(settings.rules_config)
    return load_config(user if user.is_file() else DEFAULT_CONFIG)


def load_config(path: Path | str | None = None) -> RuleConfig:
    """Read and check a rule config (default: the committed ``models/rules/rules.yaml``)."""
    path = Path(path) if path is not None else DEFAULT_CONFIG
    if not path.is_file():
        raise RuleConfigError(path, "文件不存在 (config file not found)")
    text = path.read_text(encoding="utf-8")
    return _parse(text, path)


def config_from_text(text: str, path: Path | str) -> RuleConfig:
    """A rule config from its text, as if read from ``path`` (rule SQL paths resolve from there): a config
    kept in the warehouse (``models.rules.shadow``) runs as it was when it was registered."""
    return _parse(text, Path(path))


def set_enabled(path: Path | str, rule_id: str, enabled: bool) -> RuleConfig:
    """Switch one rule on or off in the config file at *path*, keeping its comments and layout.

    The file is rewritten only when the result is a valid config.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    config = _parse(text, path)
    config.rule(rule_id)  # KeyError for an unknown id
    _, lines = _compose(text, path)
    index = next(i for i, r in enumerate(config.rules) if r.id == rule_id)
    value = "true" if enabled else "false"
    out = text.splitlines(keepends=True)
    key_line = lines.get(("rules", index, "enabled"))
    if key_line is not None:
        row = out[key_line - 1]
        out[key_line - 1] = re.sub(r"(enabled:\s*)(\S+)", lambda m: m.group(1) + value, row, count=1)
    else:
        id_line = lines[("rules", index, "id")]
        row = out[id_line - 1]
        indent = re.match(r"\s*(?:-\s*)?", row).end()
        out.insert(id_line, " " * indent + f"enabled: {value}\n")
    new_text = "".join(out)
    new = _parse(new_text, path)
    if new.rule(rule_id).enabled != enabled:  # pragma: no cover - a layout the edit did not understand
        raise RuleConfigError(path, "could not edit the enabled flag", rule_id=rule_id, field="enabled")
    path.write_text(new_text, encoding="utf-8")
    return new


# ---------------------------------------------------------------------------------------------

def _parse(text: str, path: Path) -> RuleConfig:
    data, lines = _compose(text, path)
    if not isinstance(data, dict):
        raise RuleConfigError(path, "the config must be a mapping with config_version, codes and rules", line=1)

    def fail(msg: str, key: tuple, *, rule_id: str | None = None, fld: str | None = None):
        raise RuleConfigError(path, msg, rule_id=rule_id, field=fld, line=_line_of(lines, key))

    for k in data:
        if k not in _TOP_KEYS:
            fail(f"unknown key {k!r}; known: {sorted(_TOP_KEYS)}", (k,), fld=str(k))
    for k in ("config_version", "codes", "rules"):
        if k not in data:
            raise RuleConfigError(path, f"missing {k!r}", field=k, line=1)
    history_days = data.get("history_days", 400)
    if not isinstance(history_days, int) or isinstance(history_days, bool) or history_days < 1:
        fail(f"must be a positive whole number of days, not {history_days!r}", ("history_days",), fld="history_days")

    deduction = data.get("deduction_typologies") or []
    if not isinstance(deduction, list) or any(t not in FRAUD_TYPES for t in deduction):
        fail(f"must be a list of typology ids (one of {', '.join(FRAUD_TYPES)}), not {deduction!r}",
             ("deduction_typologies",), fld="deduction_typologies")
    deduction = frozenset(deduction)

    codes = data["codes"]
    if not isinstance(codes, dict):
        fail("must be a mapping", ("codes",), fld="codes")
    for k in codes:
        if k not in _CODE_KEYS:
            fail(f"unknown code list {k!r}; known: {sorted(_CODE_KEYS)}", ("codes", k), fld=f"codes.{k}")
    for k in _CODE_KEYS:
        if k not in codes:
            fail(f"missing code list {k!r}", ("codes",), fld=f"codes.{k}")
    hosp_level: dict[str, int] = {}
    if not isinstance(codes["hosp_level"], dict):
        fail("must map a level (3, 2, 1, 0) to a list of hosp_lv codes", ("codes", "hosp_level"), fld="codes.hosp_level")
    for level, values in codes["hosp_level"].items():
        where = ("codes", "hosp_level", level)
        if not isinstance(level, int) or level not in (0, 1, 2, 3):
            fail(f"level must be 0, 1, 2 or 3, not {level!r}", where, fld=f"codes.hosp_level.{level}")
        for code in _code_list(values, lambda m: fail(m, where, fld=f"codes.hosp_level.{level}")):
            if code in hosp_level:
                fail(f"hosp_lv {code!r} is given two levels", where, fld=f"codes.hosp_level.{level}")
            hosp_level[code] = level
    levels = {}
    for k in ("clinic_level", "pharmacy_level"):
        v = codes[k]
        if not isinstance(v, int) or isinstance(v, bool) or v not in (0, 1, 2, 3):
            fail(f"must be 0, 1, 2 or 3, not {v!r}", ("codes", k), fld=f"codes.{k}")
        levels[k] = v
    med = {k: _code_list(codes[k], lambda m, k=k: fail(m, ("codes", k), fld=f"codes.{k}"))
           for k in ("inpatient_med_types", "emergency_med_types")}

    raw_rules = data["rules"]
    if not isinstance(raw_rules, list) or not raw_rules:
        fail("must be a non-empty list of rules", ("rules",), fld="rules")
    rules, seen = [], set()
    for i, raw in enumerate(raw_rules):
        rules.append(_rule(raw, i, path, lines, seen))
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return RuleConfig(path=path, sha256=digest, config_version=str(data["config_version"]),
                      history_days=history_days, hosp_level=MappingProxyType(hosp_level),
                      clinic_level=levels["clinic_level"], pharmacy_level=levels["pharmacy_level"],
                      inpatient_med_types=med["inpatient_med_types"], emergency_med_types=med["emergency_med_types"],
                      rules=tuple(rules), deduction_typologies=deduction)


def _rule(raw: Any, i: int, path: Path, lines: dict, seen: set[str]) -> Rule:
    key = ("rules", i)
    rule_id = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else None

    def fail(msg: str, fld: str | None = None):
        k = key + (fld.split(".")[0],) if fld else key
        if fld and "." in fld:
            k = key + tuple(fld.split("."))
        raise RuleConfigError(path, msg, rule_id=rule_id or f"#{i + 1}", field=fld, line=_line_of(lines, k))

    if not isinstance(raw, dict):
        fail("each rule must be a mapping")
    for k in raw:
        if k not in _RULE_KEYS:
            fail(f"unknown key {k!r}; known: {sorted(_RULE_KEYS)}", str(k))
    for k in _REQUIRED_RULE_KEYS:
        if raw.get(k) in (None, ""):
            fail("missing (required)", k)
    if not isinstance(raw["id"], str) or not _ID.fullmatch(raw["id"]):
        fail(f"must be lower-case letters, digits and _, not {raw['id']!r}", "id")
    if raw["id"] in seen:
        fail("the same id appears twice", "id")
    seen.add(raw["id"])
    for k in ("name_zh", "basis_zh", "message_zh"):
        if not isinstance(raw[k], str) or not raw[k].strip():
            fail("must be non-empty text", k)
    if raw["typology_id"] not in FRAUD_TYPES:
        fail(f"unknown typology id {raw['typology_id']!r}; see architecture.md", "typology_id")
    if not isinstance(raw["version"], (str, int)) or isinstance(raw["version"], bool):
        fail(f"must be text or a number, not {raw['version']!r}", "version")
    if raw["severity"] not in SEVERITIES:
        fail(f"must be one of {', '.join(SEVERITIES)}, not {raw['severity']!r}", "severity")
    for k in ("enabled", "realtime"):
        if k in raw and not isinstance(raw[k], bool):
            fail(f"must be true or false, not {raw[k]!r}", k)
    sql_name = raw.get("sql", f"{raw['id']}.sql")
    if not isinstance(sql_name, str) or "/" in sql_name or not sql_name.endswith(".sql"):
        fail(f"must be the name of a .sql file in {SQL_DIR}, not {sql_name!r}", "sql")
    sql_path = SQL_DIR / sql_name
    if not sql_path.is_file():
        fail(f"SQL file not found: {sql_path}", "sql")
    params = raw.get("params") or {}
    if not isinstance(params, dict):
        fail("must be a mapping of threshold name -> value", "params")
    for name, value in params.items():
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            fail(f"threshold names are lower-case identifiers, not {name!r}", f"params.{name}")
        if not _scalar_or_list(value):
            fail(f"must be a number, text, true/false or a list of them, not {value!r}", f"params.{name}")
    when = _precheck_when(raw.get("precheck_when") or {}, params, fail)
    rule = Rule(id=raw["id"], name_zh=raw["name_zh"].strip(), typology_id=raw["typology_id"],
                version=str(raw["version"]), severity=raw["severity"], basis_zh=raw["basis_zh"].strip(),
                message_zh=raw["message_zh"].strip(), sql_path=sql_path, enabled=raw.get("enabled", True),
                realtime=raw.get("realtime", True), params=MappingProxyType(dict(params)),
                line=_line_of(lines, key), precheck_when=when)
    for name in rule.placeholders:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            fail(f"placeholder {{{name}}} must name a field of the rule's detail", "message_zh")
    used = sql_params(rule.sql)
    if missing := sorted(used - set(params)):
        fail(f"the SQL {sql_path.name} uses ${', $'.join(missing)}; add them to params", "params")
    if unused := sorted(set(params) - used):
        fail(f"not used by {sql_path.name}: {', '.join(unused)} (a typo?)", f"params.{unused[0]}")
    return rule


def _precheck_when(raw: Any, params: Mapping[str, Any], fail) -> Mapping[str, Any]:
    """Check a rule's ``precheck_when`` and resolve its ``$param`` references (frozen mapping)."""
    if not isinstance(raw, dict):
        fail("must be a mapping of condition -> value", "precheck_when")
    out: dict[str, Any] = {}

    def codes(value: Any, fld: str, *, classes: bool = False) -> Any:
        if isinstance(value, str) and value.startswith("$"):
            if value[1:] not in params:
                fail(f"{value} is not a parameter of the rule (params: {', '.join(sorted(params)) or 'none'})", fld)
            value = params[value[1:]]
        elif classes and value in ("inpatient", "emergency"):
            return value
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            fail("must be a non-empty list of quoted codes"
                 + (", inpatient, emergency" if classes else "") + f" or a $param, not {value!r}", fld)
        return tuple(value)

    for name, value in raw.items():
        fld = f"precheck_when.{name}"
        if name not in PRECHECK_CONDITIONS:
            fail(f"unknown condition {name!r}; known: {', '.join(PRECHECK_CONDITIONS)}", fld)
        if name in ("med_type", "med_type_not", "history_med_type"):
            out[name] = codes(value, fld, classes=True)
        elif name == "diag_prefix":
            out[name] = codes(value, fld)
        elif name == "prd_days_total":
            if isinstance(value, str) and value.startswith("$"):
                if value[1:] not in params:
                    fail(f"{value} is not a parameter of the rule (params: {', '.join(sorted(params)) or 'none'})", fld)
                value = params[value[1:]]
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                fail(f"must be a number of days or a $param, not {value!r}", fld)
            out[name] = value
        elif name == "person_died":
            if value is not True:
                fail(f"must be true (leave it out otherwise), not {value!r}", fld)
            out[name] = True
        else:  # line
            if not isinstance(value, dict) or not value:
                fail(f"must be a mapping of {', '.join(PRECHECK_LINE_CONDITIONS)}", fld)
            line: dict[str, Any] = {}
            for k, v in value.items():
                sub = f"{fld}.{k}"
                if k not in PRECHECK_LINE_CONDITIONS:
                    fail(f"unknown line condition {k!r}; known: {', '.join(PRECHECK_LINE_CONDITIONS)}", sub)
                if k in ("in_pack", "list_type"):
                    line[k] = codes(v, sub)
                elif k == "prd_days_over":
                    if not isinstance(v, (int, float)) or isinstance(v, bool):
                        fail(f"must be a number, not {v!r}", sub)
                    line[k] = v
                elif v is not True:
                    fail(f"must be true (leave it out otherwise), not {v!r}", sub)
                else:
                    line[k] = True
            out[name] = MappingProxyType(line)
    return MappingProxyType(out)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return list(value)
    return value


def sql_params(sql: str) -> set[str]:
    """Named parameters ``$name`` of a rule's SQL (comments ignored)."""
    body = re.sub(r"--[^\n]*", "", sql)
    return set(re.findall(r"\$([a-z][a-z0-9_]*)", body))


def _scalar_or_list(value: Any) -> bool:
    scalar = (str, int, float, bool)
    if isinstance(value, scalar):
        return True
    return isinstance(value, list) and bool(value) and all(isinstance(v, scalar) for v in value) \
        and len({type(v) for v in value}) == 1


def _code_list(values: Any, fail) -> tuple[str, ...]:
    if not isinstance(values, list) or not values:
        fail(f"must be a non-empty list of codes (quoted, so leading zeros stay), not {values!r}")
    out = []
    for v in values:
        if not isinstance(v, str) or not _CODE.fullmatch(v):
            fail(f"codes are quoted text like '05', not {v!r}")
        out.append(v)
    return tuple(out)


# -- YAML with line numbers -------------------------------------------------------------------------

def _compose(text: str, path: Path) -> tuple[Any, dict[tuple, int]]:
    """The YAML document and the line (1-based) of every key and list item, by path."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise RuleConfigError(path, f"YAML syntax: {getattr(e, 'problem', e)}",
                              line=mark.line + 1 if mark else None) from None
    lines: dict[tuple, int] = {}
    if node is None:
        return None, lines
    _walk(node, (), lines)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:  # pragma: no cover - compose already parsed it
        raise RuleConfigError(path, f"YAML: {e}") from None
    return data, lines


def _walk(node: yaml.Node, key: tuple, lines: dict) -> None:
    lines[key] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            name = int(k.value) if k.tag.endswith(":int") else k.value
            lines[key + (name,)] = k.start_mark.line + 1
            _walk(v, key + (name,), lines)
            lines[key + (name,)] = k.start_mark.line + 1  # the key's line, not its value's
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, key + (i,), lines)


def _line_of(lines: dict, key: tuple) -> int | None:
    while key:
        if key in lines:
            return lines[key]
        key = key[:-1]
    return lines.get(())


def _sql_list(codes: Iterable[str]) -> str:
    """``'a', 'b'``: codes as SQL string literals for an IN list (never empty: ``NULL`` matches nothing)."""
    out = ", ".join("'" + str(c).replace("'", "''") + "'" for c in codes)
    return out or "NULL"
