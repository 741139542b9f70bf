"""Front-end libraries of the investigator page (页面前端库), installed at set-up time and served by the service.

The page draws the case graph with Cytoscape.js. The browser never fetches it from the internet (the
investigators' network may have none, and the page's CSP allows scripts from the service only):
``scripts/setup.sh`` runs ``python -m serving.ui.assets``, which downloads the pinned npm tarball, checks
it against npm's ``sha512`` integrity and puts the files the page needs into :data:`VENDOR_DIR`
(``serving/ui/vendor/``, not in git), where :func:`serving.api.create_ui_app` serves them at
``/ui/vendor/<name>`` without a token. Installing again is a no-op while the files are those the stamp
recorded; a wrong hash or a failed download is an error that says what to do.

>>> CYTOSCAPE.tarball_url()
'https://registry.npmjs.org/cytoscape/-/cytoscape-3.35.0.tgz'
>>> integrity_of(b"")[:20]
'sha512-z4PhNX7vuL3xV'
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import sys
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["NpmPackage", "CYTOSCAPE", "VENDOR_DIR", "VENDOR_FILES", "DEFAULT_REGISTRY", "AssetError",
           "install", "is_installed", "integrity_of"]

DEFAULT_REGISTRY = "https://registry.npmjs.org"
VENDOR_DIR = Path(__file__).parent / "vendor"


@dataclass(frozen=True)
class NpmPackage:
    """One pinned npm package: ``integrity`` is npm's ``dist.integrity`` of its tarball; ``files`` maps a
    member of the tarball to the name it is served under."""

    name: str
    version: str
    integrity: str
    files: dict[str, str] = field(default_factory=dict)

    def tarball_url(self, registry: str = DEFAULT_REGISTRY) -> str:
        return f"{registry.rstrip('/')}/{self.name}/-/{self.name}-{self.version}.tgz"

    @property
    def stamp(self) -> str:
        """The file recording what was installed (version, integrity, SHA-256 of each file)."""
        return f"{self.name}.installed.json"


CYTOSCAPE = NpmPackage(
    "cytoscape", "3.35.0",
    "sha512-sMvBIXiGMnhkCaWz2R06FwF/27MNlS+Tqvi17foO9UhnUg3XGZccKjxsvEqQFAQYMSSZmN5SxYzUYlQ0DOJJ3g==",
    {"package/dist/cytoscape.min.js": "cytoscape.min.js", "package/LICENSE": "cytoscape.LICENSE"})
# name -> media type of the files the service serves from VENDOR_DIR (public: libraries, no data)
VENDOR_FILES = {"cytoscape.min.js": "text/javascript; charset=utf-8", "cytoscape.LICENSE": "text/plain; charset=utf-8"}


class AssetError(RuntimeError):
    """The library could not be installed: the message says why and what to do."""


def install(package: NpmPackage = CYTOSCAPE, folder: Path = VENDOR_DIR, *, url: str | None = None,
            timeout: float = 60) -> str:
    """Put ``package``'s files into ``folder``: ``"present"`` when they are already there and unchanged,
    else ``"installed"`` after downloading ``url`` (default: the npm registry's tarball) and checking
    its integrity. Raises :class:`AssetError` when the download fails or the hash is wrong (nothing is
    written then)."""
    if is_installed(package, folder):
        return "present"
    url = url or package.tarball_url()
    data = _download(url, timeout)
    found = integrity_of(data)
    if found != package.integrity:
        raise AssetError(f"{package.name}-{package.version} 的完整性校验失败 (integrity mismatch): {url} gave "
                         f"{found[:30]}…, expected {package.integrity[:30]}…; 未安装 (nothing installed)")
    files = _members(data, package)
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (folder / name).write_bytes(content)
    stamp = {"name": package.name, "version": package.version, "integrity": package.integrity, "source": url,
             "sha256": {name: hashlib.sha256(content).hexdigest() for name, content in files.items()}}
    (folder / package.stamp).write_text(json.dumps(stamp, indent=1) + "\n", encoding="utf-8")
    return "installed"


def is_installed(package: NpmPackage = CYTOSCAPE, folder: Path = VENDOR_DIR) -> bool:
    """Whether ``folder`` holds ``package``'s files as installed from the tarball of its pinned integrity."""
    try:
        stamp = json.loads((folder / package.stamp).read_text(encoding="utf-8"))
        return (stamp.get("integrity") == package.integrity
                and set(stamp["sha256"]) == set(package.files.values())
                and all(hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
                        for name, digest in stamp["sha256"].items()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def integrity_of(data: bytes) -> str:
    """npm's Subresource-Integrity form of ``data``'s SHA-512: ``sha512-<base64>``."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")


# -- private ------------------------------------------------------------------------------------------


def _download(url: str, timeout: float) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 (https or a local file)
            return answer.read()
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise AssetError(f"下载失败 (download failed): {url}: {getattr(e, 'reason', e)}. 请检查网络或 npm 镜像 "
                         f"(check the network or pass --registry <npm mirror>), 然后重新运行 bash scripts/setup.sh") from None


def _members(data: bytes, package: NpmPackage) -> dict[str, bytes]:
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            return {name: tar.extractfile(member).read() for member, name in package.files.items()}
    except (tarfile.TarError, KeyError, AttributeError) as e:
        raise AssetError(f"{package.name}-{package.version} 的压缩包缺少文件 (tarball lacks a file): {e}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.ui.assets",
                                     description="Install the page's front-end libraries (Cytoscape.js) into serving/ui/vendor.")
    parser.add_argument("--registry", default=DEFAULT_REGISTRY, help="npm registry or mirror (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        done = install(CYTOSCAPE, VENDOR_DIR, url=CYTOSCAPE.tarball_url(args.registry))
    except AssetError as e:
        print(f"错误 error: {e}", file=sys.stderr)
        return 1
    what = "已存在 already present" if done == "present" else "已安装 installed"
    print(f"{CYTOSCAPE.name} {CYTOSCAPE.version}: {what} ({VENDOR_DIR})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
