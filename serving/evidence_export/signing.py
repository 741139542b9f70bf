"""Signing and verifying a package (签名与校验): Ed25519 over ``manifest.json``.

``manifest.json`` lists every other file of the package with its SHA-256 and size; ``manifest.sig``
holds the Ed25519 signature of the exact bytes of ``manifest.json`` (base64, one line). The package
is complete and unchanged when the signature verifies with the administrator's public key, every listed
file exists with its hash, and no file is there that the manifest does not list.

Keys are PEM files: the private key PKCS#8 (unencrypted, mode 0600, kept by the administrator and
configured with ``YIBAO_EVIDENCE_KEY``), the public key SubjectPublicKeyInfo (handed to whoever checks).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = ["VerifyResult", "generate_keypair", "load_private_key", "load_public_key", "sign_manifest",
           "verify_package", "sha256_file", "key_fingerprint", "MANIFEST", "SIGNATURE", "KEY_ENV"]

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
KEY_ENV = "YIBAO_EVIDENCE_KEY"
PRIVATE_NAME = "evidence_signing_key.pem"
PUBLIC_NAME = "evidence_signing_key.pub.pem"


@dataclass
class VerifyResult:
    """``ok`` when the package is complete and unchanged; otherwise ``problems`` says what is wrong."""

    ok: bool
    problems: list[str] = field(default_factory=list)
    manifest: dict | None = None
    files_checked: int = 0

    def to_dict(self) -> dict:
        return {"ok": self.ok, "problems": self.problems, "files_checked": self.files_checked,
                "clue_id": (self.manifest or {}).get("clue_id"),
                "created_at": (self.manifest or {}).get("created_at")}

    def __bool__(self) -> bool:
        return self.ok


def generate_keypair(out_dir: Path) -> tuple[Path, Path]:
    """Write a new Ed25519 key pair into ``out_dir``; refuses to overwrite an existing key."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    priv_path, pub_path = out_dir / PRIVATE_NAME, out_dir / PUBLIC_NAME
    for p in (priv_path, pub_path):
        if p.exists():
            raise FileExistsError(f"密钥已存在, 不覆盖 (key exists, not overwritten): {p}")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(priv_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    pub_path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo))
    return priv_path, pub_path


def load_private_key(source: Ed25519PrivateKey | Path | str | None) -> Ed25519PrivateKey:
    """The signing key: a key object, a PEM path, or (None) the path in ``YIBAO_EVIDENCE_KEY``."""
    if isinstance(source, Ed25519PrivateKey):
        return source
    if source is None or source == "":
        source = os.environ.get(KEY_ENV) or None
    if source is None:
        raise FileNotFoundError(f"未配置证据包签名密钥 (no evidence signing key configured): set {KEY_ENV} to the "
                                "private key file, created with `yibao evidence keygen --out DIR`")
    key = serialization.load_pem_private_key(Path(source).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"不是 Ed25519 私钥 (not an Ed25519 private key): {source}")
    return key


def load_public_key(source: Ed25519PublicKey | Path | str | bytes) -> Ed25519PublicKey:
    """The verification key: a key object, PEM bytes or a PEM path."""
    if isinstance(source, Ed25519PublicKey):
        return source
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("不是 Ed25519 公钥 (not an Ed25519 public key)")
    return key


def key_fingerprint(key: Ed25519PublicKey) -> str:
    """SHA-256 of the raw public key, hex: names the key in the manifest."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sign_manifest(folder: Path, manifest: dict, key: Ed25519PrivateKey) -> str:
    """Write ``manifest.json`` and ``manifest.sig``; returns the SHA-256 of ``manifest.json`` (the
    package hash: it covers every file through their hashes)."""
    data = (json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True) + "\n").encode("utf-8")
    (folder / MANIFEST).write_bytes(data)
    (folder / SIGNATURE).write_text(base64.b64encode(key.sign(data)).decode("ascii") + "\n", encoding="ascii")
    return hashlib.sha256(data).hexdigest()


def verify_package(folder: Path | str, public_key: Ed25519PublicKey | Path | str | bytes) -> VerifyResult:
    """Prove ``folder`` is the package as signed: signature, every file's hash, nothing added or missing."""
    folder = Path(folder)
    problems: list[str] = []
    man_path, sig_path = folder / MANIFEST, folder / SIGNATURE
    if not man_path.is_file() or not sig_path.is_file():
        missing = [p.name for p in (man_path, sig_path) if not p.is_file()]
        problems = [f"缺少 (missing) {m}" for m in missing]
        inner = sorted(m.parent for m in folder.glob(f"*/{MANIFEST}")) if folder.is_dir() else []
        if not folder.is_dir():
            problems.append(f"不是文件夹 (not a folder): {folder} — 请先解压证据包 zip，再校验解压出的文件夹")
        elif len(inner) == 1:  # pointed at where the zip was unpacked, not at the package inside it
            problems.append(f"这是解压目录，证据包在其中的文件夹里 (the package is the folder inside): 请校验 {inner[0]}")
        elif inner:
            problems.append("此目录下有多个证据包，请逐个校验 (several packages here, verify each): "
                            + ", ".join(str(i) for i in inner))
        return VerifyResult(False, problems)
    data = man_path.read_bytes()
    try:
        load_public_key(public_key).verify(base64.b64decode(sig_path.read_text(encoding="ascii").strip(),
                                                            validate=True), data)
    except (InvalidSignature, ValueError) as e:
        return VerifyResult(False, [f"签名无效, 清单被改动或密钥不符 (signature invalid: manifest altered or wrong key)"
                                    f"{': ' + str(e) if str(e) else ''}"])
    manifest = json.loads(data.decode("utf-8"))
    listed = {f["path"]: f for f in manifest.get("files", [])}
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink()}
    present -= {MANIFEST, SIGNATURE}
    for p in sorted(set(listed) - present):
        problems.append(f"文件缺失 (file removed): {p}")
    for p in sorted(present - set(listed)):
        problems.append(f"多出文件 (file added): {p}")
    checked = 0
    for p in sorted(set(listed) & present):
        target = folder / p
        if target.is_symlink():
            problems.append(f"符号链接 (symbolic link, not allowed): {p}")
            continue
        checked += 1
        if sha256_file(target) != listed[p]["sha256"]:
            problems.append(f"内容被改动 (file changed): {p}")
    return VerifyResult(not problems, problems, manifest, checked)
