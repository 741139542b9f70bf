"""Rules: the national 两库 rule pack (knowledge base / rule base, batches 1–8) and, later, the rule engine."""

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
