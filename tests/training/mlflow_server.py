"""A throwaway MLflow tracking server for tests: ``mlflow server`` from the installed package, on a free
port of 127.0.0.1, with a SQLite backend store and the artifacts served by the server itself
(``--serve-artifacts``: clients upload and download them over HTTP, as they would from a 医保局's server).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from ports import free_port

__all__ = ["MlflowServer"]


class MlflowServer:
    """``with MlflowServer(root) as server: server.uri`` — the server runs in a process group of its own,
    stopped (group and all) on exit."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.artifacts = self.root / "artifacts"
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> MlflowServer:
        self.root.mkdir(parents=True, exist_ok=True)
        log = open(self.root / "server.log", "wb")  # noqa: SIM115 - kept open for the server's life
        cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
               "--workers", "1", "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
               "--serve-artifacts", "--artifacts-destination", str(self.artifacts)]
        self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                      cwd=self.root)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited ({self._proc.returncode}): {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        self.__exit__(None, None, None)
        raise RuntimeError(f"mlflow server did not answer /health in 120 s: {self.log_tail()}")

    def __exit__(self, *exc) -> None:
        if self._proc is not None and self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait()

    def log_tail(self, n: int = 2000) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace")[-n:] if path.is_file() else ""

