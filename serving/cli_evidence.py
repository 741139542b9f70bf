"""``yibao evidence ...``: evidence packages for public security (移送公安证据包).

``export`` writes a clue's signed package (see ``docs/evidence.md``), acting as ``--user`` (its role
decides the redaction: clear identities only for a liaison on a case transferred to public security);
``verify`` checks a package with the public key alone; ``keygen`` makes the signing key pair. The
signing key of ``export`` is ``--key FILE``, else the file named by ``YIBAO_EVIDENCE_KEY``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from serving.cli import JSON_OPT, WAREHOUSE_OPT, _emit, _fail
from serving.cli_clues import DB_OPT, USER_OPT, _call, _open, console

__all__ = ["evidence_app"]

evidence_app = typer.Typer(help="证据包 evidence packages for public security: export, verify, keygen.",
                           no_args_is_help=True)


@evidence_app.command("export")
def evidence_export(
    clue_id: int = typer.Argument(..., help="Clue number (编号)."),
    out: Path = typer.Option(..., "--out", "-o", help="Package folder to create (must not exist or be empty)."),
    depth: int = typer.Option(1, "--depth", min=0, max=3, help="Hops of graph neighbourhood around the clue."),
    max_nodes: int = typer.Option(400, "--max-nodes", min=1, help="Most nodes in the case graph (strongest ties kept)."),
    key: Optional[Path] = typer.Option(None, "--key", help="Ed25519 private key (PEM). Default: YIBAO_EVIDENCE_KEY."),
    model_version: Optional[str] = typer.Option(
        None, "--model-version", help="Model version to name in the report: a text, or registry:<alias|version>. "
        "Default: the registry's champion (what `yibao screen` uses) at the tracking URI."),
    no_pdf: bool = typer.Option(False, "--no-pdf", help="Do not render report.pdf (HTML only)."),
    db: Optional[str] = DB_OPT,
    user: Optional[str] = USER_OPT,
    warehouse: Optional[Path] = WAREHOUSE_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """导出证据包: a clue's case graph, claims and report, signed; audited in the clue store."""
    import json

    from serving.cli import _settings
    from serving.evidence_export import export_package

    settings = _settings(warehouse)
    if not Path(settings.warehouse).is_file():
        _fail(f"数据仓库不存在 (warehouse not found): {settings.warehouse}")
    store, actor = _open(db, warehouse, user)
    try:
        folder = _call(export_package, settings.warehouse, store, clue_id, actor, out, depth=depth,
                       signing_key=key, settings=settings, max_nodes=max_nodes, model_version=model_version,
                       pdf=not no_pdf)
    except FileExistsError as e:
        _fail(str(e))
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    summary = {"folder": str(folder), "clue_id": manifest["clue_id"], "redaction": manifest["redaction"],
               "files": len(manifest["files"]), "graph": manifest["graph"], "counts": manifest["counts"],
               "pdf": manifest["pdf"]}
    if as_json:
        return _emit(summary, True)
    console.print(f"证据包已导出 package written: {folder} (线索 #{summary['clue_id']}, {summary['redaction']}, "
                  f"{summary['files']} files, {summary['graph']['nodes']} nodes / {summary['graph']['edges']} edges)")
    if manifest["pdf"]["status"] != "rendered":
        console.print(f"[yellow]PDF {manifest['pdf']['status']}:[/yellow] {manifest['pdf'].get('reason', '')}")


@evidence_app.command("verify")
def evidence_verify(
    folder: Path = typer.Argument(..., help="Package folder."),
    public_key: Path = typer.Option(..., "--public-key", "-k", help="The administrator's Ed25519 public key (PEM)."),
    as_json: bool = JSON_OPT,
) -> None:
    """校验证据包: signature, every file's SHA-256, nothing added or removed. Exit 1 when it fails."""
    from serving.evidence_export import verify_package

    if not folder.is_dir():
        _fail(f"目录不存在 (no such folder): {folder}")
    try:
        result = verify_package(folder, public_key)
    except (OSError, ValueError) as e:
        _fail(f"无法读取公钥 (cannot read public key): {e}")
    if as_json:
        _emit(result.to_dict(), True)
    elif result.ok:
        console.print(f"[green]校验通过 verified:[/green] {result.files_checked} files, complete and unchanged "
                      f"(线索 #{result.manifest.get('clue_id')}, {result.manifest.get('created_at')})")
    else:
        console.print("[red]校验失败 verification failed:[/red]")
        for p in result.problems:
            console.print(f"  - {p}")
    if not result.ok:
        raise typer.Exit(1)


@evidence_app.command("keygen")
def evidence_keygen(
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the key pair (private key mode 0600)."),
    as_json: bool = JSON_OPT,
) -> None:
    """生成签名密钥: a new Ed25519 key pair; set YIBAO_EVIDENCE_KEY to the private key, hand out the public one."""
    from serving.evidence_export import generate_keypair

    try:
        priv, pub = generate_keypair(out)
    except FileExistsError as e:
        _fail(str(e))
    if as_json:
        return _emit({"private_key": str(priv), "public_key": str(pub)}, True)
    console.print(f"私钥 private key: {priv}  (export YIBAO_EVIDENCE_KEY={priv})\n公钥 public key: {pub}")
