"""The service under test: the tiny region with its trained bundle and screened clues, served by a real server.

:func:`build_service_data` takes the session's tiny warehouse and trained bundle and screens clues.
:func:`seed_store` writes those clues, the synthetic clues the tests move and the users into a clue store. :func:`launch_server` starts the server
in a subprocess (``yibao serve`` or ``bentoml serve``) on a free port; :func:`wait_ready` waits until it
answers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import httpx

from ports import free_port

__all__ = ["ServiceData", "Served", "build_service_data", "seed_store", "launch_server", "wait_ready", "free_port",
           "RESIDENT_ID", "USERS", "WORKFLOW_CLUES", "QUEUE_CLUES", "REGION", "paths_covering_every_transition", "move", "run_yibao", "unzip_package", "YIBAO"]

# A resident ID (valid birth date and form) that must never come back unmasked.
RESIDENT_ID = "11010519491231002X"
REGION = "220102"
# username -> (role, region)
USERS = {"wang": ("admin", ""), "li": ("investigator", "2201"), "zhao": ("investigator", "3301"),
         "ana": ("analyst", ""), "gong": ("liaison", ""), "retired": ("investigator", "2201")}
WORKFLOW_CLUES = 24
# Clues of the work-queue tests (search, filters, bulk assignment, export): (id, risk p, amount, name).
QUEUE_CLUES = [("Q-00", 0.95, 88_000.0, "宽城区队列第一医院"), ("Q-01", 0.9, 12_000.0, "宽城区队列第一诊所"),
               ("Q-02", 0.55, 30_000.0, "宽城区队列第二医院"), ("Q-03", 0.5, 2_500.0, "宽城区队列第二诊所"),
               ("Q-04", 0.2, 700.0, "宽城区队列第三诊所"), ("Q-05", 0.92, 45_000.0, "宽城区队列第三医院")]
PROJECT_ROOT = Path(__file__).resolve().parents[2]
YIBAO = str(Path(sys.executable).with_name("yibao"))


@dataclass
class ServiceData:
    warehouse: Path
    bundle: Path
    vault: Path
    clues: list[dict]
    person: str  # a psn_no of the region, with a clear ID in the identity vault
    person_certno: str
    evidence_key: Path  # the Ed25519 key pair the server signs evidence packages with
    evidence_public_key: Path


@dataclass
class Served:
    """A running server and what the tests need to call it."""

    backend: str
    base_url: str
    db_url: str
    tokens: dict[str, str]
    ids: dict[str, int]
    log_path: Path
    data: ServiceData
    proc: subprocess.Popen = field(repr=False)

    def client(self, user: str | None = None, token: str | None = None) -> httpx.Client:
        headers = {}
        if user is not None or token is not None:
            headers["Authorization"] = f"Bearer {token if token is not None else self.tokens[user]}"
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=60)

    def store(self):
        from serving.clues.store import open_store

        return open_store(self.db_url, identity_vault=self.data.vault)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def build_service_data(warehouse: Path, bundle, folder: Path) -> ServiceData:
    """The shared tiny warehouse and trained bundle (tests/conftest.py), the bundle saved to a file (what
    the server loads) and the clues the screening job finds with it."""
    import duckdb

    from features.config import Settings
    from models.screening import screen

    from serving.evidence_export import generate_keypair

    path = bundle.save(folder / "bundle.joblib")
    ranked = screen(warehouse, bundle, max_clues=60).clues
    clues = ranked[:12]  # the 12 highest, and the first ring with members (for the evidence package tests)
    clues += [c for c in ranked[12:] if c["entity_type"] == "ring" and c["evidence"]["graph"]["members"]][:1]
    key, public_key = generate_keypair(folder / "evidence_keys")
    with duckdb.connect(str(Settings(warehouse=warehouse).identity_vault), read_only=True) as con:
        person, certno = con.execute("SELECT psn_no, certno FROM psn_identity ORDER BY psn_no LIMIT 1").fetchone()
    return ServiceData(warehouse, path, Settings(warehouse=warehouse).identity_vault, clues, person, certno,
                       key, public_key)


def seed_store(db_url: str, data: ServiceData) -> tuple[dict[str, str], dict[str, int]]:
    """Write the screened clues, the synthetic ones and the users; returns (tokens, named clue ids)."""
    from serving.clues.store import open_store

    synthetic = [_clue("fixmedins", f"WF-{i:02d}", REGION, 0.5 + i / 100, 1000.0 + i) for i in range(WORKFLOW_CLUES)]
    synthetic += [_clue("fixmedins", q, "220103", p, amount, name=name) for q, p, amount, name in QUEUE_CLUES]
    synthetic += [
        _clue("fixmedins", "ZJ-001", "330102", 0.9, 90000.0, name="浙江某医院"),
        _clue("psn", data.person, REGION, 0.8, 5000.0, typologies=["card_theft"],
              reasons=[{"text_zh": f"举报称身份证 {RESIDENT_ID} 被冒用", "feature": "report", "value": None,
                        "peer_value": None, "contribution": 1.0}]),
    ]
    # screened clues with everything a clue page shows, in the region of the investigator "li"
    full = [c for c in data.clues if c["reasons"] and c["rule_hits"] and c["evidence"].get("setl_id")
            and c["entity_type"] != "ring" and str(c.get("region") or "").startswith("2201")]
    assert len(full) >= 2, f"the screening found too few complete clues: {[_key(c) for c in data.clues]}"
    with open_store(db_url, identity_vault=data.vault) as store:
        store.upsert_clues("screen-test", data.clues)
        store.upsert_clues("synthetic", synthetic)
        tokens = {u: store.create_user(u, role, region) for u, (role, region) in USERS.items()}
        keys = {c["clue_key"]: c["id"] for c in store.list(_system(), limit=1000)["items"]}
    ids = {f"wf{i}": keys[f"fixmedins:WF-{i:02d}"] for i in range(WORKFLOW_CLUES)}
    ids |= {f"q{i}": keys[f"fixmedins:{q[0]}"] for i, q in enumerate(QUEUE_CLUES)}
    ids |= {"zhejiang": keys["fixmedins:ZJ-001"], "person": keys[f"psn:{data.person}"],
            "screened": keys[_key(full[0])], "screened_ui": keys[_key(full[1])]}
    rings = [c for c in data.clues if c["entity_type"] == "ring" and c["evidence"]["graph"]["members"]]
    assert rings, f"the screening found no ring: {[_key(c) for c in data.clues]}"
    ids["ring"] = keys[_key(rings[0])]
    return tokens, ids


@contextmanager
def serving_alone(data: ServiceData, folder: Path, argv: Callable[[int, str], list[str]],
                  env: dict[str, str] | None = None) -> Iterator[Served]:
    """A server of its own on a fresh SQLite clue store in ``folder``, started by ``argv(port, db_url)``,
    ready; stopped on leaving."""
    db_url = f"sqlite:///{folder / 'clues.db'}"
    tokens, ids = seed_store(db_url, data)
    port = free_port()
    proc = launch_server(argv(port, db_url), server_env(data, db_url) | (env or {}), folder / "server.log")
    served = Served("sqlite", f"http://127.0.0.1:{port}", db_url, tokens, ids, folder / "server.log", data, proc)
    try:
        wait_ready(proc, port, served.log_path)
        yield served
    finally:
        served.stop()


def launch_server(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """Start ``argv`` in its own process group, output to ``log_path``; do not wait."""
    full_env = {**os.environ, **env, "BENTOML_DO_NOT_TRACK": "true", "PYTHONUNBUFFERED": "1"}
    with log_path.open("wb") as log:
        return subprocess.Popen(argv, env=full_env, stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT,
                                start_new_session=True)


def wait_ready(proc: subprocess.Popen, port: int, log_path: Path, *, timeout: float = 240) -> None:
    """Wait until the server answers ``/readyz`` with 200; kill it and raise with its log if it does not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}):\n{log_path.read_text(errors='replace')[-4000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGKILL)
    raise RuntimeError(f"server not ready after {timeout} s:\n{log_path.read_text(errors='replace')[-4000:]}")



def server_env(data: ServiceData, db_url: str) -> dict[str, str]:
    return {"YIBAO_WAREHOUSE": str(data.warehouse), "YIBAO_CLUE_DB": db_url, "YIBAO_BUNDLE": str(data.bundle),
            "YIBAO_SERVE_THREADS": "4", "YIBAO_EVIDENCE_KEY": str(data.evidence_key),
            "YIBAO_DEV": "1"}  # a simulated warehouse made with the development key


def bentoml_argv(port: int) -> list[str]:
    return [sys.executable, "-m", "bentoml", "serve", "serving.service:Screening", "--host", "127.0.0.1",
            "--port", str(port), "--working-dir", str(PROJECT_ROOT)]


def _key(clue: dict) -> str:
    return f"{clue['entity_type']}:{clue['entity_id']}"


def _system():
    from serving.clues.store import SYSTEM

    return SYSTEM


def _clue(entity_type: str, entity_id: str, region: str, p: float, amount: float, *, name: str | None = None,
          typologies: list[str] | None = None, reasons: list[dict] | None = None) -> dict:
    return {"entity_type": entity_type, "entity_id": entity_id, "entity_name": name or f"测试机构 {entity_id}",
            "region": region, "p_fraud": p, "amount_at_risk": amount,
            "typologies": typologies or ["fake_treatment"], "sources": ["model"], "reasons": reasons or [],
            "rule_hits": [], "evidence": {}}


def paths_covering_every_transition() -> list[list[str]]:
    """For each allowed move a→b: a shortest path new→a, then b, then a shortest path b→closed."""
    from serving.clues.workflow import TRANSITIONS

    def shortest(src: str, dst: str) -> list[str]:
        prev, todo = {src: None}, deque([src])
        while todo:
            s = todo.popleft()
            for t in TRANSITIONS[s]:
                if t not in prev:
                    prev[t] = s
                    todo.append(t)
        path = [dst]
        while path[-1] != src:
            path.append(prev[path[-1]])
        return path[::-1]

    return [shortest("new", a) + shortest(b, "closed") for a, targets in TRANSITIONS.items() for b in targets]


def move(client: httpx.Client, clue_id: int, to_state: str, *, assignee: str = "li") -> httpx.Response:
    """POST one workflow move with what it needs (承办人 to assign, 查实金额 to confirm; to close a case
    transferred to public security, first its final outcome 立案, recorded as a transition to the same state)."""
    if to_state == "closed" and client.get(f"/api/clues/{clue_id}").json().get("state") == "transferred_police":
        r = client.post(f"/api/clues/{clue_id}/referral-outcome",
                        json={"outcome": "filed", "outcome_date": date.today().isoformat(), "doc_no": "测试立字1号"})
        if r.status_code != 200:
            return r
    body = {"to_state": to_state, "reason": f"测试 {to_state}"}
    if to_state == "assigned":
        body["assignee"] = assignee
    if to_state == "confirmed":
        body["confirmed_amount"] = 1234.5
    return client.post(f"/api/clues/{clue_id}/transitions", json=body)


def run_yibao(*args: str, env: dict | None = None, timeout: float = 1800) -> dict:
    """Run ``yibao ARGS --json`` in a subprocess; its JSON answer (fails with the output when it exits non-zero),
    with what it wrote to stderr under ``_stderr``."""
    import json

    done = subprocess.run([YIBAO, *args, "--json"], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=PROJECT_ROOT)
    assert done.returncode == 0, (f"yibao {' '.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}\n"
                                  f"{done.stderr[-3000:]}")
    return json.loads(done.stdout[done.stdout.index("{"):]) | {"_stderr": done.stderr}


def unzip_package(content: bytes, where: Path) -> Path:
    """Unzip an evidence-package download into ``where``; returns the package folder (its one top folder)."""
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(content)) as zf:
        (top,) = {n.split("/", 1)[0] for n in zf.namelist()}
        zf.extractall(where)
    return Path(where) / top
