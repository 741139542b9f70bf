"""The page's front-end library: installed from a tarball only when its sha512 integrity is right, installed
once, served from /ui/vendor/ without a token (no network here: the tarballs are local files)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serving.api import create_ui_app
from serving.auth import PUBLIC_PATHS
from serving.ui.assets import CYTOSCAPE, VENDOR_FILES, AssetError, NpmPackage, install, integrity_of, is_installed

LIBRARY = b"/* a library */ window.cytoscape = function () {};\n"


def _tarball(folder: Path, files: dict[str, bytes]) -> tuple[str, str]:
    """A .tgz of ``files`` in ``folder``: its file:// URL and its integrity."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    path = folder / "lib-1.0.0.tgz"
    path.write_bytes(buffer.getvalue())
    return path.as_uri(), integrity_of(buffer.getvalue())


@pytest.fixture()
def tarball(tmp_path):
    url, integrity = _tarball(tmp_path, {"package/dist/lib.min.js": LIBRARY, "package/LICENSE": b"MIT\n"})
    package = NpmPackage("lib", "1.0.0", integrity, {"package/dist/lib.min.js": "lib.min.js", "package/LICENSE": "lib.LICENSE"})
    return package, url


def test_installs_a_tarball_of_the_pinned_integrity_once(tarball, tmp_path):
    package, url = tarball
    vendor = tmp_path / "vendor"
    assert install(package, vendor, url=url) == "installed"
    assert (vendor / "lib.min.js").read_bytes() == LIBRARY and (vendor / "lib.LICENSE").read_bytes() == b"MIT\n"
    assert is_installed(package, vendor)
    # again: nothing is fetched (the URL does not exist)
    assert install(package, vendor, url=(tmp_path / "gone.tgz").as_uri()) == "present"


def test_refuses_a_tarball_with_another_hash(tarball, tmp_path):
    package, url = tarball
    pinned = NpmPackage(package.name, package.version, integrity_of(b"another tarball"), package.files)
    with pytest.raises(AssetError, match="integrity mismatch"):
        install(pinned, tmp_path / "vendor", url=url)
    assert not (tmp_path / "vendor").exists()


def test_reinstalls_a_changed_file_and_says_when_the_download_fails(tarball, tmp_path):
    package, url = tarball
    vendor = tmp_path / "vendor"
    install(package, vendor, url=url)
    (vendor / "lib.min.js").write_text("alert('changed')")
    assert not is_installed(package, vendor)
    with pytest.raises(AssetError, match="下载失败 .*scripts/setup.sh"):
        install(package, vendor, url=(tmp_path / "gone.tgz").as_uri())
    assert install(package, vendor, url=url) == "installed"
    assert (vendor / "lib.min.js").read_bytes() == LIBRARY


def test_the_pin_is_npm_s_cytoscape():
    assert CYTOSCAPE.tarball_url() == "https://registry.npmjs.org/cytoscape/-/cytoscape-3.35.0.tgz"
    assert CYTOSCAPE.integrity.startswith("sha512-") and set(CYTOSCAPE.files.values()) == set(VENDOR_FILES)


def test_the_page_loads_the_library_from_the_service_without_a_token(tmp_path):
    (tmp_path / "cytoscape.min.js").write_bytes(LIBRARY)
    with TestClient(create_ui_app(vendor_dir=tmp_path)) as client:
        page = client.get("/")
        assert '<script src="/ui/vendor/cytoscape.min.js">' in page.text
        assert "script-src 'self' 'sha256-" in page.headers["content-security-policy"]
        served = client.get("/vendor/cytoscape.min.js")
        assert served.status_code == 200 and served.content == LIBRARY
        assert served.headers["content-type"].startswith("text/javascript")
        assert client.get("/vendor/cytoscape.LICENSE").status_code == 404  # not installed here
        assert client.get("/vendor/..%2Fapi.py").status_code == 404
    assert {f"/ui/vendor/{name}" for name in VENDOR_FILES} <= PUBLIC_PATHS
