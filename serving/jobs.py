"""Long work off the request path (后台任务): evidence packages built by a bounded pool of background processes.

An evidence package with its PDF takes seconds to tens of seconds (the case graph, the report, headless
Chromium). Run in the request workers, eight at once held the pre-check up for hundreds of milliseconds.
:class:`JobPool` runs them instead in at most ``processes`` background processes per service worker,
started with the service in the idle CPU class (``SCHED_IDLE``) at a lower priority (``nice``), so that on a
busy machine the request workers are served first; each process imports only what the export needs.

Why the idle class and not ``nice`` alone: Chromium sets its own processes' and threads' priorities
(renderers to nice 0, compositor threads to −8), which it may do when it runs as root (as in a container);
eight exports then took the pre-check's p99 from 51 ms to 2 s. The scheduling class is inherited by every
process and thread the background process starts, Chromium's included, and Chromium leaves it alone; an
idle-class thread runs only on CPU time nothing else wants, so an export waits while the machine is full
rather than the pre-check.

Why also an idle CPU group: where Linux groups processes for the CPU — by session (autogroup, the default
on a desktop or in a container: each server started in its own session is a group) or by control group (a
systemd service) — the idle class counts only inside a group, and groups share the CPU as equals. The
exports, in the request workers' group, then competed with the pre-check's own server and the clients as
a normal group would (soak: pre-check p50 36 ms in the server during the exports, 12 ms outside them).
A background process therefore also joins the CPU control group ``YIBAO_JOB_CGROUP`` (default
``/sys/fs/cgroup/cpu/yibao-background``, made if missing) marked ``cpu.idle = 1``: the kernel then
treats the whole group as idle against every other group. Where it may not (no such controller, not
permitted) the process keeps the idle class alone and says so in the log.

The job itself is a row of the clue store (:meth:`ClueStore.create_job`): its state (排队中 queued →
生成中 running → 已完成 done / 失败 failed), who asked, which service process runs it and the result. Every
service worker can therefore answer for every job, and a job whose service process died (a crash, a
``kill -9``) is found and marked failed instead of staying "running". A user may have ``per_user`` jobs
queued or running at once (:class:`~serving.clues.store.TooManyJobs` beyond that: 429), the service
``max_live``. The finished package is a zip in ``folder`` named by the job id, kept ``keep_hours``.

A background process exits when the service process that started it is gone.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serving.clues.access import User

__all__ = ["JobLimits", "JobPool", "EVIDENCE_JOB", "lower_priority", "lift_priority_in_transactions"]

log = logging.getLogger("yibao.serving")

EVIDENCE_JOB = "evidence_package"
IDLE_CGROUP = "/sys/fs/cgroup/cpu/yibao-background"  # cgroup v1 cpu controller; v2: a delegated folder


@dataclass(frozen=True)
class JobLimits:
    """How much background work the service takes on (env ``YIBAO_JOB_*``, read by the service)."""

    processes: int = 1  # background processes per service worker
    per_user: int = 2  # jobs one user may have queued or running
    max_live: int = 16  # jobs the whole service may have queued or running
    keep_hours: float = 24.0  # finished packages are deleted after this
    niceness: int = 10  # CPU priority of the background processes (higher = yields more)
    idle_class: bool = True  # SCHED_IDLE: run only on CPU time the request workers leave (Linux)
    cgroup: str = ""  # an idle CPU control group to join ("": YIBAO_JOB_CGROUP or IDLE_CGROUP; "none": none)


class JobPool:
    """Evidence packages built in background processes; see the module docstring."""

    def __init__(self, *, db_url: str, settings, folder: Path, limits: JobLimits = JobLimits(),
                 model_version: str | None = None) -> None:
        self.db_url, self.settings, self.folder = db_url, settings, Path(folder)
        self.limits, self.model_version = limits, model_version
        self.folder.mkdir(parents=True, exist_ok=True)
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._last_cleanup = 0.0

    def submit_evidence(self, store, user: User, clue_id: int, *, depth: int = 1,
                        pdf: bool = True) -> tuple[dict, Future]:
        """Queue the evidence package of ``clue_id`` for ``user``: the job (as the store has it) and a future
        that resolves to its result (or raises what the export raised: refused access, no signing key).

        Raises :class:`~serving.clues.store.TooManyJobs` over the limits and ``ClueNotFound`` for a clue
        ``user`` may not see, before anything is queued.
        """
        job = store.create_job(EVIDENCE_JOB, user, clue_id=clue_id, params={"depth": depth, "pdf": pdf},
                               per_user=self.limits.per_user, max_live=self.limits.max_live, owner_pid=os.getpid())
        try:
            future = self._pool().submit(_evidence_job, job["id"], self.db_url, self.settings, user, clue_id,
                                         depth, pdf, str(self.folder), self.model_version)
        except Exception as e:  # noqa: BLE001  (the pool broke: the job must not stay queued)
            store.fail_job(job["id"], f"后台进程不可用 (background pool unavailable): {type(e).__name__}")
            self._executor = None
            raise
        self._cleanup()
        return job, future

    def start(self, *, wait: bool = True) -> None:
        """Start the background processes now (the service calls this as it starts), not at the first
        export: a new process imports its stack at the normal priority before it can lower its own, and
        at the first exports of a busy day that was seconds of CPU taken from the pre-check (soak: p99 384
        ms in the first 10 s of eight exports, 75–111 ms after). ``wait=False``: in a thread of its own,
        so that the service is ready meanwhile."""
        if not wait:
            threading.Thread(target=self.start, daemon=True, name="start-background-pool").start()
            return
        try:
            futures = [self._pool().submit(_ready) for _ in range(self.limits.processes)]
            for f in futures:
                f.result(timeout=300)
        except Exception as e:  # noqa: BLE001  (the service serves without; the first export tries again)
            log.warning("后台进程未能启动 (background processes did not start: %s); the first export will try again",
                        type(e).__name__)
            self.close()

    def result_path(self, job_id: str) -> Path:
        """Where the finished package of ``job_id`` is (it may have been deleted after ``keep_hours``)."""
        return self.folder / f"{job_id}.zip"

    def status(self) -> dict[str, Any]:
        return {"processes": self.limits.processes, "per_user": self.limits.per_user, "max_live": self.limits.max_live,
                "started": self._executor is not None}

    def close(self) -> None:
        with self._lock:
            if self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = None

    def _pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                # spawn: a fresh interpreter, not a fork of a worker holding the model, threads and locks
                self._executor = ProcessPoolExecutor(
                    max_workers=self.limits.processes, mp_context=multiprocessing.get_context("spawn"),
                    initializer=_background_process,
                    initargs=(os.getpid(), self.limits.niceness, self.limits.idle_class, _cgroup(self.limits)))
            return self._executor

    def _cleanup(self) -> None:
        now = time.time()
        if now - self._last_cleanup < 600:
            return
        self._last_cleanup = now
        for path in self.folder.iterdir():
            try:
                if now - path.stat().st_mtime > self.limits.keep_hours * 3600:
                    path.unlink() if path.is_file() else None
            except OSError:
                continue


# -- the background process -------------------------------------------------------------------------

_STORE: dict[str, Any] = {}


def _cgroup(limits: JobLimits) -> str | None:
    chosen = limits.cgroup or os.environ.get("YIBAO_JOB_CGROUP") or IDLE_CGROUP
    return None if chosen == "none" else chosen


def _background_process(parent_pid: int, niceness: int, idle_class: bool = True, cgroup: str | None = None) -> None:
    lower_priority(niceness, idle_class=idle_class, cgroup=cgroup)
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True, name="watch-parent").start()


def lower_priority(niceness: int, *, idle_class: bool = True, cgroup: str | None = None) -> dict[str, Any]:
    """Put this process (and everything it starts later) behind the request workers: ``nice`` and, on
    Linux, the idle scheduling class and the idle CPU control group ``cgroup`` (see the module docstring).
    Returns what took effect (``{"nice": int, "idle_class": bool, "cgroup": str | None}``)."""
    try:
        os.nice(niceness)
    except OSError:
        pass
    idle = False
    if idle_class and hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            idle = True
        except OSError:  # not permitted here: nice alone
            log.warning("后台进程无法进入空闲调度 (SCHED_IDLE refused): background work runs at nice %d only",
                        niceness)
    joined = _join_idle_cgroup(Path(cgroup)) if cgroup and idle_class else None
    return {"nice": os.nice(0), "idle_class": idle, "cgroup": joined}


def _join_idle_cgroup(folder: Path) -> str | None:
    """Move this process into the CPU control group ``folder``, made if missing and marked idle
    (``cpu.idle = 1``); the folder's path, or None where that is not possible here."""
    try:
        folder.mkdir(exist_ok=True)
        (folder / "cpu.idle").write_text("1")
        (folder / "cgroup.procs").write_text(str(os.getpid()))
    except OSError as e:
        log.warning("后台进程无法进入空闲CPU组 (idle CPU group %s refused: %s): it competes as a normal group",
                    folder, type(e).__name__)
        return None
    return str(folder)


def _reads(path: Path, value: str) -> bool:
    try:
        return path.read_text().strip() == value
    except OSError:
        return False


def _own_cpu_cgroup() -> Path | None:
    """The folder of the cgroup-v1 ``cpu`` control group this thread is in, or None (no v1 ``cpu``
    controller: on cgroup v2 a thread cannot leave its group alone, and its transactions keep the group)."""
    try:
        lines = Path("/proc/thread-self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "cpu" in controllers.split(","):
            return Path("/sys/fs/cgroup/cpu") / path.lstrip("/")
    return None


def lift_priority_in_transactions(engine) -> bool:
    """Run this (idle-class) process's clue-store transactions in the normal class at nice 0.

    A transaction holds the store's write lock (SQLite: ``BEGIN IMMEDIATE``) from its start to its commit.
    An idle-class process runs only on CPU time nothing else wants: preempted while it holds the lock on a
    busy machine, it would keep every request worker that writes (each clue read writes its audit entry)
    waiting behind the work it yields to (priority inversion). Lifted for the few milliseconds of the
    transaction, it finishes it at once. Returns False, and changes nothing, where the process may not
    leave the idle class (not Linux, or not permitted: an unprivileged process may not, by default).
    """
    if not hasattr(os, "SCHED_IDLE") or os.sched_getscheduler(0) != os.SCHED_IDLE:
        return False
    niceness = os.getpriority(os.PRIO_PROCESS, 0)
    idle_group = _own_cpu_cgroup()
    if idle_group is not None and not _reads(idle_group / "cpu.idle", "1"):
        idle_group = None
    # in an idle CPU group (cgroup v1, whose "tasks" file moves one thread) the thread leaves the group too:
    # an idle group runs only on CPU time every other group leaves, whatever its threads' class
    moves = idle_group is not None and (idle_group / "tasks").is_file() and (idle_group.parent / "tasks").is_file()

    def lift(_conn=None) -> None:  # Linux: every call here acts on the calling thread
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        os.setpriority(os.PRIO_PROCESS, 0, 0)
        if moves:
            (idle_group.parent / "tasks").write_text(str(threading.get_native_id()))

    def drop(_conn=None) -> None:
        if moves:
            (idle_group / "tasks").write_text(str(threading.get_native_id()))
        os.setpriority(os.PRIO_PROCESS, 0, niceness)
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))

    try:  # a probe: may this process go back to the normal class and priority?
        lift()
    except OSError:
        return False
    finally:
        drop()
    from sqlalchemy import event

    event.listen(engine, "begin", lift, insert=True)  # before the write lock is taken
    event.listen(engine, "commit", drop)  # after it is released
    event.listen(engine, "rollback", drop)
    return True


def _ready() -> int:
    return os.getpid()


def _exit_with_parent(parent_pid: int) -> None:
    while True:
        time.sleep(2)
        if os.getppid() != parent_pid:
            os._exit(0)


def _evidence_job(job_id: str, db_url: str, settings, user: User, clue_id: int, depth: int, pdf: bool,
                  folder: str, model_version: str | None) -> dict:
    """Build, zip and record one evidence package (runs in a background process)."""
    import tempfile

    from serving.clues.store import open_store
    from serving.evidence_export import export_package, zip_package

    store = _STORE.get(db_url)
    if store is None:
        store = _STORE[db_url] = open_store(db_url, identity_vault=Path(settings.identity_vault), upgrade=False)
        lift_priority_in_transactions(store.engine)
    if not store.start_job(job_id):
        return {"skipped": True}
    try:
        with tempfile.TemporaryDirectory(prefix=f"job-{job_id}-", dir=folder) as tmp:
            package = export_package(Path(settings.warehouse), store, clue_id, user, Path(tmp) / f"clue-{clue_id}-evidence",
                                     depth=depth, settings=settings, model_version=model_version, pdf=pdf)
            package_hash = hashlib.sha256((package / "manifest.json").read_bytes()).hexdigest()
            body = zip_package(package)
            partial = Path(tmp) / "package.zip"
            partial.write_bytes(body)
            partial.replace(Path(folder) / f"{job_id}.zip")  # whole or not at all
        result = {"filename": f"{package.name}.zip", "sha256": package_hash, "bytes": len(body)}
        store.finish_job(job_id, result)
        return result
    except Exception as e:
        store.fail_job(job_id, _failure(e))
        raise


def _failure(e: Exception) -> str:
    from serving.clues.access import AccessDenied
    from serving.clues.store import ClueNotFound

    if isinstance(e, (ClueNotFound, AccessDenied)):
        return f"无权导出此线索 (not allowed to export this clue): {type(e).__name__}"
    if isinstance(e, FileNotFoundError):
        return f"服务器未配置签名密钥或仓库 (no signing key or warehouse on the server): {e}"
    return f"生成失败 (export failed): {type(e).__name__}"
