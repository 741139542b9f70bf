"""Settings, read once at the edge (the CLI or the service) into a frozen object.

Values come from, in order: explicit arguments, environment variables ``YIBAO_*``, a ``yibao.toml``
file in the working directory (or the one named by ``YIBAO_CONFIG``), then defaults that work with zero
setup (DuckDB warehouse, local MLflow under ``mlruns/``).

The pseudonym key (假名化密钥) is, in order: ``pseudonym_key`` (``YIBAO_PSEUDONYM_KEY``), the file named by
``pseudonym_key_file`` (``YIBAO_PSEUDONYM_KEY_FILE``), the key file beside the warehouse
(``<warehouse>.pseudonym.key``, which ``yibao demo`` generates), else the public development key, which
``yibao ingest`` and ``yibao serve`` refuse outside ``--dev``. A key file must be readable by its owner only.

>>> s = Settings(warehouse=Path("w.duckdb"))
>>> s.identity_vault
PosixPath('w.identity.duckdb')
>>> s.clue_db_url
'sqlite:///clues.db'
>>> s.default_key_file, s.using_dev_key, s.pseudonym_key_source
(PosixPath('w.pseudonym.key'), True, 'dev')
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

__all__ = ["Settings", "load_settings", "identity_vault_path", "DEV_PSEUDONYM_KEY"]

# Used only when no key is configured. It is public (it is in this file), so whoever holds a warehouse
# made with it can check guessed resident IDs against the pseudonyms: `yibao ingest` and `yibao serve`
# refuse it outside --dev, and `yibao demo` generates a key of its own instead.
DEV_PSEUDONYM_KEY = "yibao-dev-key-not-for-production"


def identity_vault_path(warehouse: Path) -> Path:
    """The identity vault beside ``warehouse``: ``<warehouse stem>.identity.duckdb``."""
    warehouse = Path(warehouse)
    return warehouse.with_name(warehouse.stem + ".identity.duckdb")


@dataclass(frozen=True)
class Settings:
    warehouse: Path = Path("data/warehouse.duckdb")
    pseudonym_key: str = field(default=DEV_PSEUDONYM_KEY, repr=False)
    # Where the key came from, for messages (never the key itself): 'YIBAO_PSEUDONYM_KEY', a key file, 'dev'.
    pseudonym_key_source: str = "dev"
    pseudonym_key_file: Path | None = None
    tracking_uri: str = "sqlite:///mlruns/mlflow.db"
    # Ingest: rows whose time lies after this moment are "future dates"; None means now.
    as_of: str | None = None
    # The user's copy of the rule config (规则配置); while it does not exist the committed
    # models/rules/rules.yaml is used. `yibao rules enable/disable` write it.
    rules_config: Path = Path("data/rules.yaml")
    # Clue store (线索库): a SQLAlchemy URL; empty means SQLite beside the warehouse (see clue_db_url).
    # PostgreSQL: postgresql+psycopg://user:password@host:5432/dbname
    clue_db: str = ""
    # Days a clue may stay unverified (新线索/已分派/核查中) before it is overdue (逾期), per risk level: the
    # high-risk deadline also offers the clue for cross-checking. The one place these deadlines live
    # (clue_sla_days_by_risk).
    clue_sla_days: int = 30
    clue_sla_days_medium: int = 60
    clue_sla_days_low: int = 90

    @property
    def identity_vault(self) -> Path:
        """Separate file holding clear resident IDs, names and birth dates (身份信息), readable only by liaisons."""
        return identity_vault_path(self.warehouse)

    @property
    def default_key_file(self) -> Path:
        """The key file beside the warehouse (``<warehouse>.pseudonym.key``), used when no key is set."""
        return self.warehouse.with_name(self.warehouse.stem + ".pseudonym.key")

    @property
    def clue_sla_days_by_risk(self) -> dict[str, int]:
        """核查期限 per risk level (days from the clue's first raising): ``{"high": 30, "medium": 60, "low": 90}``."""
        return {"high": self.clue_sla_days, "medium": self.clue_sla_days_medium, "low": self.clue_sla_days_low}

    @property
    def clue_db_url(self) -> str:
        """Where the clue store lives: ``clue_db`` when set, else ``sqlite:///<warehouse folder>/clues.db``."""
        return self.clue_db or f"sqlite:///{self.warehouse.parent / 'clues.db'}"

    @property
    def using_dev_key(self) -> bool:
        return self.pseudonym_key == DEV_PSEUDONYM_KEY


def public_key_refusal(s: Settings, *, dev_switch: str = "--dev") -> str:
    """Why the public development pseudonym key is refused and what to do instead (Chinese first), for the
    commands (``--dev``) and the service (``YIBAO_DEV=1``)."""
    return ("未配置假名化密钥，拒绝使用公开的开发密钥：开发密钥写在源代码里，任何拿到仓库的人都能用它从"
            "地区、出生日期和性别反推出身份证号 (refusing the public development pseudonym key)。请任选其一：\n"
            "  1. 设置环境变量 YIBAO_PSEUDONYM_KEY 为一把只有本机构知道的随机密钥（至少 32 个字符），例如用 "
            "python -c \"import secrets; print(secrets.token_hex(32))\" 生成；同一仓库之后每次都必须用同一把；\n"
            f"  2. 或把密钥写进仓库旁的密钥文件 {s.default_key_file}（仅所有者可读：chmod 600；yibao demo 会自动"
            "生成它），也可以用 YIBAO_PSEUDONYM_KEY_FILE 指向别处的密钥文件；\n"
            f"  3. 仅处理模拟数据时，加 {dev_switch}。")


def load_settings(**overrides) -> Settings:
    """Read settings from the environment and ``yibao.toml``; keyword overrides that are not None win."""
    values: dict = {}
    cfg_path = Path(os.environ.get("YIBAO_CONFIG", "yibao.toml"))
    if cfg_path.is_file():
        with cfg_path.open("rb") as fh:
            values.update(tomllib.load(fh))
    env_map = {
        "YIBAO_WAREHOUSE": "warehouse",
        "YIBAO_PSEUDONYM_KEY": "pseudonym_key",
        "YIBAO_PSEUDONYM_KEY_FILE": "pseudonym_key_file",
        "MLFLOW_TRACKING_URI": "tracking_uri",
        "YIBAO_AS_OF": "as_of",
        "YIBAO_RULES_CONFIG": "rules_config",
        "YIBAO_CLUE_DB": "clue_db",
        "YIBAO_CLUE_SLA_DAYS": "clue_sla_days",
        "YIBAO_CLUE_SLA_DAYS_MEDIUM": "clue_sla_days_medium",
        "YIBAO_CLUE_SLA_DAYS_LOW": "clue_sla_days_low",
    }
    for env, name in env_map.items():
        if os.environ.get(env):
            values[name] = os.environ[env]
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f for f in Settings.__dataclass_fields__}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"yibao.toml: unknown setting(s) {sorted(unknown)}; known: {sorted(known)}")
    for name in ("warehouse", "rules_config", "pseudonym_key_file"):
        if name in values:
            values[name] = Path(values[name])
    for name in ("clue_sla_days", "clue_sla_days_medium", "clue_sla_days_low"):
        if name in values:
            try:
                values[name] = int(values[name])
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be a whole number of days, not {values[name]!r}") from None
    settings = replace(Settings(), **values)
    return _with_key(settings, explicit="pseudonym_key" in values)


def _with_key(settings: Settings, *, explicit: bool) -> Settings:
    """``settings`` with the pseudonym key resolved (see the module docstring); ValueError for a key file
    that cannot be used."""
    from features.pseudonym import KeyFileError, read_key_file

    if explicit:
        return replace(settings, pseudonym_key_source="YIBAO_PSEUDONYM_KEY / yibao.toml")
    path = settings.pseudonym_key_file
    if path is None and settings.default_key_file.is_file():
        path = settings.default_key_file
    if path is None:
        return settings
    try:
        key = read_key_file(path)
    except KeyFileError as exc:
        raise ValueError(str(exc)) from None
    return replace(settings, pseudonym_key=key, pseudonym_key_source=str(path))
