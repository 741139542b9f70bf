"""A throwaway Spark standalone cluster for tests: a master and workers on this machine.

Started with the pyspark package's own launcher (``pyspark/bin/spark-class``, the classes
``org.apache.spark.deploy.master.Master`` and ``org.apache.spark.deploy.worker.Worker``), bound to
127.0.0.1 on free ports, logs and work folders in a temporary folder. Each daemon runs in a process group
of its own; :meth:`StandaloneCluster.stop` ends the groups it started (a worker's executors are in its
group), by id, and waits for them.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from ports import free_port

__all__ = ["StandaloneCluster"]


class StandaloneCluster:
    """``with StandaloneCluster(workers=1, cores=2) as c: ... c.master_url ...``"""

    def __init__(self, *, workers: int = 1, cores: int = 2, memory: str = "1g", timeout: float = 90) -> None:
        import pyspark

        self.spark_home = Path(pyspark.__file__).parent
        self.workers, self.cores, self.memory, self.timeout = workers, cores, memory, timeout
        self.root = Path(tempfile.mkdtemp(prefix="yibao-spark-cluster-"))
        self.procs: list[subprocess.Popen] = []
        self.groups: set[int] = set()  # process groups started here (kept after stop, for alive())
        self.master_url = ""

    def __enter__(self) -> StandaloneCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> StandaloneCluster:
        port = free_port()
        master_log = self._launch("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                                  "--port", str(port), "--webui-port", str(free_port()))
        self.master_url = f"spark://127.0.0.1:{port}"
        self._wait_for(master_log, r"I have been elected leader|Starting Spark master")
        for i in range(self.workers):
            work = self.root / f"worker{i}"
            log = self._launch(f"worker{i}", "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                               "--cores", str(self.cores), "--memory", self.memory, "--webui-port", str(free_port()),
                               "--work-dir", str(work), self.master_url)
            self._wait_for(log, r"Successfully registered with master")
        return self

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for proc in self.procs:  # executors left behind by a worker that died first
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        while self.alive() and time.monotonic() < deadline + 10:
            time.sleep(0.2)
        self.procs = []
        shutil.rmtree(self.root, ignore_errors=True)

    def alive(self) -> list[int]:
        """Ids of the processes still running in the cluster's process groups (empty after :meth:`stop`).
        Zombies do not count: ``spark-class`` leaves its launcher's shell as a child of the daemon it
        became, and init reaps it once the daemon has ended."""
        out = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                    if state != "Z" and os.getpgid(int(entry.name)) in self.groups:
                        out.append(int(entry.name))
                except (OSError, IndexError):  # gone meanwhile
                    pass
        return out

    # -- helpers ------------------------------------------------------------------------------------

    def _launch(self, name: str, cls: str, *args: str) -> Path:
        log = self.root / f"{name}.log"
        env = os.environ | {"SPARK_HOME": str(self.spark_home), "SPARK_LOG_DIR": str(self.root),
                            "SPARK_DAEMON_MEMORY": "512m", "SPARK_NO_DAEMONIZE": "1"}
        with open(log, "wb") as fh:
            self.procs.append(subprocess.Popen([str(self.spark_home / "bin" / "spark-class"), cls, *args],
                                               stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=self.root,
                                               start_new_session=True))
        self.groups.add(self.procs[-1].pid)
        return log

    def _wait_for(self, log: Path, pattern: str) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            text = log.read_text(errors="replace") if log.exists() else ""
            if re.search(pattern, text):
                return
            if any(p.poll() is not None for p in self.procs):
                raise RuntimeError(f"a Spark daemon exited while starting; {log.name}:\n{text[-3000:]}")
            time.sleep(0.5)
        raise TimeoutError(f"no /{pattern}/ in {log} after {self.timeout} s:\n{log.read_text(errors='replace')[-3000:]}")

