"""Rules: the national 两库 rule pack (knowledge base / rule base, batches 1–8) and the rule engine.

The engine lives in submodules imported on demand: ``config`` (rules.yaml), ``engine`` (batch run),
``precheck`` (one visit in real time), ``evaluate`` (against labels), ``backtest``, ``summary`` (the pack
against the published counts). See docs/rules.md.
"""

from models.rules.pack import (
    DEFAULT_PACK,
    PACK_COLUMNS,
    RULE_KINDS,
    TYPOLOGY_BY_RULE_KIND,
    PackInfo,
    SkippedRow,
    build_pack,
    load_pack,
    pack_version,
)

__all__ = [
    "DEFAULT_PACK",
    "PACK_COLUMNS",
    "RULE_KINDS",
    "TYPOLOGY_BY_RULE_KIND",
    "PackInfo",
    "SkippedRow",
    "build_pack",
    "load_pack",
    "pack_version",
]
