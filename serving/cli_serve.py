"""``yibao serve``: start the BentoML service (pre-check, scoring, clue API, investigator page).

The command checks what the service will load, puts the choices in the environment the service reads
(``YIBAO_WAREHOUSE``, ``YIBAO_CLUE_DB``, ``MLFLOW_TRACKING_URI``, ``YIBAO_BUNDLE``, ``YIBAO_MODEL_REF``,
``YIBAO_SERVE_WORKERS``, ``YIBAO_SERVE_THREADS``, ``YIBAO_SERVE_NICE``) and replaces itself with
``bentoml serve serving.service:Screening`` (``serving.service:Precheck`` with ``--precheck-only``) — the
same server as running that command by hand.
BentoML's usage tracking is switched off (``BENTOML_DO_NOT_TRACK``): a fund-supervision server does not
report to a third party.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer

from serving.cli import DEV_OPT, WAREHOUSE_OPT, _settings, console, require_key

__all__ = ["serve_command", "serve_argv"]

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def serve_argv(host: str, port: int, *, precheck_only: bool = False) -> list[str]:
    """The command line of the server: ``python -m bentoml serve serving.service:Screening ...``
    (``serving.service:Precheck``, the pre-check and scoring alone, with ``precheck_only``)."""
    service = "serving.service:Precheck" if precheck_only else "serving.service:Screening"
    return [sys.executable, "-m", "bentoml", "serve", service, "--host", host, "--port", str(port),
            "--working-dir", str(PROJECT_ROOT)]


def serve_command(
    warehouse: Optional[Path] = WAREHOUSE_OPT,
    clue_db: Optional[str] = typer.Option(None, "--db", help="Clue store URL (default: settings; SQLite beside "
                                          "the warehouse). PostgreSQL: postgresql+psycopg://user:pw@host/db"),
    bundle: Optional[Path] = typer.Option(None, help="A scorer bundle file instead of the registered champion."),
    model: str = typer.Option("champion", help="Registered model alias or version to load."),
    tracking_uri: Optional[str] = typer.Option(None, help="MLflow tracking URI (default: settings)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0 for every interface)."),
    port: int = typer.Option(3000, help="Port."),
    workers: int = typer.Option(1, min=1, help="Server processes (each loads the model and the rule checker)."),
    threads: int = typer.Option(4, min=1, help="Request threads per process."),
    precheck_only: bool = typer.Option(False, "--precheck-only", help="Only POST /precheck and POST /score "
                                       "(the hospitals' interface), in processes of their own; run the desk "
                                       "(clue API, page) as a second `yibao serve` on another port."),
    nice: int = typer.Option(0, min=0, max=19, help="Lower the CPU priority of this server's processes (e.g. "
                             "10 for the desk beside a --precheck-only server on the same machine)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the command and settings, do not start."),
    dev: bool = DEV_OPT,
) -> None:
    """启动服务 start the service: POST /precheck, POST /score, the clue API /api and the page /ui.

    With ``--precheck-only``, the hospitals' interface alone (预审接口: /precheck, /score): a second server
    for the hospitals' network, so that the investigators' desk neither shares processes with it nor is
    reachable from there.

    Refuses the public development pseudonym key unless ``--dev``: set YIBAO_PSEUDONYM_KEY, or keep the
    key file beside the warehouse (``yibao demo`` makes one).
    """
    s = _settings(warehouse)
    require_key(s, dev)
    if bundle is not None and not bundle.is_file():
        console.print(f"[red]错误 (error):[/red] 模型文件不存在 (bundle not found): {bundle}")
        raise typer.Exit(2)
    if not s.warehouse.is_file():
        console.print(f"[yellow]注意:[/yellow] 仓库不存在 (warehouse not found): {s.warehouse} — the pre-check "
                      "will answer 503 until it exists; the clue API works")
    env = dict(os.environ)
    env.update({"YIBAO_WAREHOUSE": str(s.warehouse.resolve()), "YIBAO_MODEL_REF": model,
                "YIBAO_SERVE_WORKERS": str(workers), "YIBAO_SERVE_THREADS": str(threads), "YIBAO_SERVE_NICE": str(nice),
                "BENTOML_DO_NOT_TRACK": "true"})
    if dev:
        env["YIBAO_DEV"] = "1"  # the service checks the key again (bentoml serve by hand)
    if clue_db:
        env["YIBAO_CLUE_DB"] = clue_db
    env["MLFLOW_TRACKING_URI"] = _absolute_sqlite(tracking_uri or s.tracking_uri)
    if s.rules_config.is_file():
        env["YIBAO_RULES_CONFIG"] = str(s.rules_config.resolve())
    if bundle is not None:
        env["YIBAO_BUNDLE"] = str(bundle.resolve())
    argv = serve_argv(host, port, precheck_only=precheck_only)
    store = (clue_db or s.clue_db_url).split("@")[-1]  # never print a password
    if precheck_only:
        console.print(f"预审接口 pre-check: http://{host}:{port}/precheck  评分 score: /score  "
                      f"接口文档 OpenAPI: /docs.json")
    else:
        console.print(f"服务 service: http://{host}:{port}  页面 page: http://{host}:{port}/ui  "
                      f"接口文档 OpenAPI: /api/openapi.json")
    console.print(f"仓库 warehouse: {s.warehouse}  线索库 clue store: {store}  模型 model: "
                  f"{bundle if bundle else model + ' @ ' + env['MLFLOW_TRACKING_URI']}")
    if dry_run:
        sys.stdout.write(" ".join(argv) + "\n")
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe(argv[0], argv, env)


def _absolute_sqlite(uri: str) -> str:
    # the server may run in another working directory: a relative SQLite path must not move with it
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix):].startswith("/"):
        return prefix + str(Path(uri[len(prefix):]).resolve())
    return uri
