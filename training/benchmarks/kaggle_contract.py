"""Kaggle raw inpatient claims through the data contract and the project's own pipeline (基准测试 b).

Part (b) of the Kaggle benchmark. The raw tables of "Healthcare Provider Fraud Detection"
(``kaggle-provider-fraud/``: beneficiaries, inpatient claims, provider labels) are *mapped* — not
feature-engineered — into the tables of the data contract (``../shared/design/data-contract.md``), written
as a region folder like the simulator writes, and then go through exactly what a real extract goes
through: ingest (validation, quarantine), graph, features. The provider rows of ``feat_fixmedins``
(2,092 inpatient providers) are scored by the project's :class:`models.scorers.FraudScorer`, out of fold
over stratified 5-fold cross-validation, and compared with ranking providers by their total reimbursed
amount (the README anchor: PR-AUC 0.688).

What the mapping has to invent, because the Kaggle data does not carry it (all of it documented in
``docs/benchmarks.md``):

- *Times.* Kaggle has dates only: admission at 08:00, procedures at 09:00 on the admission day, discharge
  (and the whole-claim line) at 10:00, settlement at 12:00 on the discharge day.
- *Fee lines.* Kaggle has no fee lines. Each claim gets one zero-priced line per procedure code
  (``ClmProcedureCode_i``; what the procedures cost is not known) and one line carrying the whole claim
  amount under its DRG (``DiagnosisGroupCode``: Medicare pays an inpatient stay per DRG), so the lines add
  up to the settlement.
- *Region codes.* ``admdvs`` of 7 digits: state, ``00``, county. The first four digits — the "city" the
  features compare as the pooling region (统筹区) — are the state. A provider has no location in Kaggle;
  it is given the state and county most of its inpatients live in.
- *Scheme and label type.* One insurance scheme (``insutype`` 390) for everybody. A provider label is
  ``fixmedins`` / ``fake_treatment`` (虚假诊疗, the nearest typology to Kaggle's generic "potential fraud"),
  source ``inspection``; the amount of a positive label is the provider's total reimbursed amount.

Amounts stay in the Kaggle dollars (ranking does not care about the unit); diagnosis codes stay ICD-9
as given (the injury flag of the features looks for ICD-10 ``S``/``T`` and never fires here).

>>> claims = pd.DataFrame({"ClaimID": ["C1"], "BeneID": ["B1"], "Provider": ["P1"],
...     "AdmissionDt": ["2009-03-01"], "DischargeDt": ["2009-03-04"], "InscClaimAmtReimbursed": ["9000"],
...     "DeductibleAmtPaid": ["1068"], "AttendingPhysician": ["D1"], "OperatingPhysician": ["D2"],
...     "DiagnosisGroupCode": ["201"], "ClmDiagnosisCode_1": ["4019"], "ClmDiagnosisCode_2": ["25000"],
...     "ClmProcedureCode_1": ["3893"]})
>>> lines = fee_list_d(claims)
>>> lines[["bkkp_sn", "hilist_code", "bilg_dr_code", "det_item_fee_sumamt"]].values.tolist()
[['C1-C', 'DRG-201', 'D1', 10068.0], ['C1-P1', '3893', 'D2', 0.0]]
>>> setl_d(claims, psn_info(pd.DataFrame({"BeneID": ["B1"], "DOB": ["1940-05-01"], "DOD": [None],
...     "Gender": ["2"], "State": ["39"], "County": ["230"]})))[["medfee_sumamt", "hifp_pay", "psn_pay"]].values.tolist()
[[10068.0, 9000.0, 1068.0]]
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold

from features.contract import TABLES

__all__ = [
    "RAW_DIR",
    "FILES",
    "INSUTYPE",
    "FRAUD_TYPE",
    "ANCHORS",
    "BASELINE_PR_AUC",
    "KaggleRaw",
    "ContractReport",
    "find_raw",
    "load_raw",
    "to_contract",
    "psn_info",
    "fixmedins",
    "practitioner",
    "mdtrt_d",
    "setl_d",
    "setl_list_diag_d",
    "fee_list_d",
    "labels",
    "write_region",
    "provider_amounts",
    "cross_validated_scores",
    "scorer_settings",
    "PIPELINE_STEPS",
    "run_contract_benchmark",
]

RAW_DIR = "kaggle-provider-fraud"
FILES = {
    "labels": "Train-1542865627584.csv",
    "inpatient": "Train_Inpatientdata-1542865627584.csv.zip",
    "beneficiary": "Train_Beneficiarydata-1542865627584.csv.zip",
}
INSUTYPE = "390"  # one scheme for everybody: Kaggle (Medicare) has no 职工 / 居民 split
MED_TYPE_INPATIENT = "21"  # 普通住院
FRAUD_TYPE = "fake_treatment"  # 虚假诊疗: the nearest typology to Kaggle's generic "PotentialFraud"
LABEL_SOURCE = "inspection"
LABEL_DECIDED_AT = "2009-12-31 23:59:59"  # labels carry no date; the end of the claims window
DIAG_COLUMNS = tuple(f"ClmDiagnosisCode_{i}" for i in range(1, 11))
PROC_COLUMNS = tuple(f"ClmProcedureCode_{i}" for i in range(1, 7))
# Dates only in Kaggle: fixed clock times keep begin < procedures < end < settlement on the same days.
ADMIT_TIME, PROC_TIME, DISCHARGE_TIME, SETTLE_TIME = "08:00:00", "09:00:00", "10:00:00", "12:00:00"

# Published / computed figures on these data (shared/benchmarks/README.md), for the report.
ANCHORS = {
    "amount ranking, inpatient only, 5-fold CV (README)": {"roc_auc": 0.864, "pr_auc": 0.688},
    "LightGBM, out-of-fold, full data with outpatient (SJCS)": {"roc_auc": 0.939, "pr_auc": 0.699},
    "TabPFN / GraphSAGE / LightGBM, 20 % hold-out, full data with outpatient (dipakml)": {
        "roc_auc": "0.960 / 0.954 / 0.950", "pr_auc": "0.760 / 0.740 / 0.730"},
}
BASELINE_PR_AUC = 0.688
# Steps of the runner before the cross-validation folds (for progress).
PIPELINE_STEPS = ("map", "ingest", "graph", "features")

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class KaggleRaw:
    """The raw Kaggle tables, every value a string (``None`` where Kaggle writes ``NA``)."""

    inpatient: pd.DataFrame
    beneficiary: pd.DataFrame
    provider_labels: pd.DataFrame  # Provider, PotentialFraud (Yes/No)


@dataclass(frozen=True)
class ContractReport:
    """What part (b) did: the mapped rows, the ingest, the pipeline steps and the cross-validated figures."""

    seed: int
    folds: int
    n_providers: int
    n_fraud: int
    n_claims: int
    rows: dict[str, int]  # contract rows written, per table
    ingest: dict[str, object]  # rows in / loaded / quarantined, quarantine reasons
    n_features: int
    scorer: dict[str, object]  # FraudScorer parameters and the modes it chose per fold
    model: dict[str, float]  # out-of-fold ROC-AUC / PR-AUC, pooled and per fold (mean, sd)
    amount_ranking: dict[str, float]  # the same figures for ranking by total reimbursed amount
    folds_beating_amount: int  # folds where the model's PR-AUC is above the amount ranking's on the same fold
    seconds: dict[str, float]
    anchors: dict[str, dict[str, object]] = field(default_factory=dict)
    target_pr_auc: float = BASELINE_PR_AUC

    @property
    def reached(self) -> bool:
        return self.model["pr_auc"] > self.target_pr_auc

    def to_dict(self) -> dict:
        return asdict(self) | {"reached": self.reached}


# -- reading ---------------------------------------------------------------------------------------


def find_raw(folder: Path) -> Path | None:
    """The ``kaggle-provider-fraud`` folder in ``folder`` (or ``folder`` itself); None when absent."""
    folder = Path(folder)
    for cand in (folder / RAW_DIR, folder):
        if all((cand / name).is_file() for name in FILES.values()):
            return cand
    return None


def load_raw(folder: Path, *, providers: int | None = None) -> KaggleRaw:
    """Read the three raw tables; ``providers`` keeps the first n inpatient providers (by code) only.

    The zipped CSVs were re-saved by R: quoted strings, ``NA`` for missing. Everything is read as text so
    that codes keep their spelling (``V1581``, ``0389``).
    """
    raw = find_raw(folder)
    if raw is None:
        raise FileNotFoundError(f"Kaggle raw claims not found in {folder} (expected {RAW_DIR}/ with "
                                f"{', '.join(FILES.values())})")

    def read(name: str) -> pd.DataFrame:
        df = pd.read_csv(raw / FILES[name], dtype=str, keep_default_na=False, na_values=["NA", ""])
        return df.astype(object).where(df.notna(), None)

    claims = read("inpatient")
    if providers is not None:
        keep = sorted(claims["Provider"].unique())[:providers]
        claims = claims[claims["Provider"].isin(keep)]
    claims = claims.sort_values("ClaimID", kind="stable").reset_index(drop=True)
    bene = read("beneficiary")
    bene = bene[bene["BeneID"].isin(set(claims["BeneID"]))].reset_index(drop=True)
    lab = read("labels")
    lab = lab[lab["Provider"].isin(set(claims["Provider"]))].reset_index(drop=True)
    return KaggleRaw(claims, bene, lab)


# -- the mapping: one pure function per contract table ---------------------------------------------


def to_contract(raw: KaggleRaw) -> dict[str, pd.DataFrame]:
    """All contract tables of the mapped region, keyed by table name (see the module docstring)."""
    persons = psn_info(raw.beneficiary)
    claims = raw.inpatient
    return {
        "fixmedins": fixmedins(claims, persons),
        "practitioner": practitioner(claims),
        "psn_info": persons,
        "mdtrt_d": mdtrt_d(claims, persons),
        "setl_d": setl_d(claims, persons),
        "fee_list_d": fee_list_d(claims),
        "setl_list_diag_d": setl_list_diag_d(claims),
        "labels": labels(raw.provider_labels, claims),
    }


def psn_info(beneficiary: pd.DataFrame) -> pd.DataFrame:
    """参保人: BeneID → psn_no, Gender (1 male, 2 female, as the national gend) → gend, DOB → brdy,
    DOD → die_date, State/County → insu_admdvs. No resident ID: ``certno`` is left out."""
    b = beneficiary
    return pd.DataFrame({
        "psn_no": b["BeneID"],
        "gend": b["Gender"],
        "brdy": b["DOB"],
        "insutype": INSUTYPE,
        "insu_admdvs": _admdvs(b["State"], b["County"]),
        "die_date": b["DOD"],
    })


def fixmedins(claims: pd.DataFrame, persons: pd.DataFrame) -> pd.DataFrame:
    """定点医疗机构: one hospital per provider that has inpatient claims; located (``admdvs``) where most
    of its inpatients live (ties: the smaller code). No grade, beds or specialties in Kaggle."""
    where = claims[["Provider", "BeneID"]].merge(
        persons[["psn_no", "insu_admdvs"]], left_on="BeneID", right_on="psn_no", how="left")
    counts = where.groupby(["Provider", "insu_admdvs"]).size().rename("n").reset_index()
    top = (counts.sort_values(["Provider", "n", "insu_admdvs"], ascending=[True, False, True])
           .drop_duplicates("Provider"))
    codes = pd.DataFrame({"Provider": sorted(claims["Provider"].unique())}).merge(top, on="Provider", how="left")
    return pd.DataFrame({
        "fixmedins_code": codes["Provider"],
        "fixmedins_name": "Kaggle provider " + codes["Provider"],
        "fixmedins_type": "hospital",
        "admdvs": codes["insu_admdvs"],
    })


def practitioner(claims: pd.DataFrame) -> pd.DataFrame:
    """医师: every attending or operating physician, at the provider where they appear on most claims
    (ties: the smaller code). A physician seen at several providers keeps one id: the graph links them."""
    roles = pd.concat([claims[["AttendingPhysician", "Provider"]].set_axis(["prac_code", "Provider"], axis=1),
                       claims[["OperatingPhysician", "Provider"]].set_axis(["prac_code", "Provider"], axis=1)])
    roles = roles.dropna(subset=["prac_code"])
    counts = roles.groupby(["prac_code", "Provider"]).size().rename("n").reset_index()
    top = counts.sort_values(["prac_code", "n", "Provider"], ascending=[True, False, True]).drop_duplicates("prac_code")
    return pd.DataFrame({"prac_code": top["prac_code"], "fixmedins_code": top["Provider"]}).reset_index(drop=True)


def mdtrt_d(claims: pd.DataFrame, persons: pd.DataFrame) -> pd.DataFrame:
    """就诊: one inpatient admission (med_type 21) per claim; AdmissionDt / DischargeDt → begntime /
    endtime, ClmDiagnosisCode_1 → main discharge diagnosis, AttendingPhysician → chief doctor."""
    c = claims
    return pd.DataFrame({
        "mdtrt_id": c["ClaimID"],
        "psn_no": c["BeneID"],
        "fixmedins_code": c["Provider"],
        "med_type": MED_TYPE_INPATIENT,
        "begntime": c["AdmissionDt"] + " " + ADMIT_TIME,
        "endtime": c["DischargeDt"] + " " + DISCHARGE_TIME,
        "dscg_maindiag_code": c["ClmDiagnosisCode_1"],
        "chfpdr_code": c["AttendingPhysician"],
        "ipt_days": _days(c["AdmissionDt"], c["DischargeDt"]),
        "insu_admdvs": _person_admdvs(c, persons),
    })


def setl_d(claims: pd.DataFrame, persons: pd.DataFrame) -> pd.DataFrame:
    """结算: one settlement per claim. InscClaimAmtReimbursed → fund paid (fund_pay_sumamt = hifp_pay),
    DeductibleAmtPaid → person paid (psn_pay; missing = 0), their sum → medfee_sumamt; no personal
    account (acct_pay 0); DRG (DiagnosisGroupCode) → dise_no."""
    c = claims
    fund = _money(c["InscClaimAmtReimbursed"])
    own = _money(c["DeductibleAmtPaid"])
    p = persons.set_index("psn_no")
    brdy = c["BeneID"].map(p["brdy"])
    return pd.DataFrame({
        "setl_id": c["ClaimID"],
        "mdtrt_id": c["ClaimID"],
        "psn_no": c["BeneID"],
        "fixmedins_code": c["Provider"],
        "med_type": MED_TYPE_INPATIENT,
        "insutype": INSUTYPE,
        "setl_time": c["DischargeDt"] + " " + SETTLE_TIME,
        "medfee_sumamt": (fund + own).round(2),
        "fund_pay_sumamt": fund,
        "hifp_pay": fund,
        "psn_pay": own,
        "acct_pay": 0.0,
        "insu_admdvs": _person_admdvs(c, persons),
        "refd_setl_flag": "0",
        "begndate": c["AdmissionDt"],
        "enddate": c["DischargeDt"],
        "gend": c["BeneID"].map(p["gend"]),
        "brdy": brdy,
        "age": ((pd.to_datetime(c["DischargeDt"]) - pd.to_datetime(brdy)).dt.days / 365.25).round(1),
        "dise_no": c["DiagnosisGroupCode"],
    })


def setl_list_diag_d(claims: pd.DataFrame) -> pd.DataFrame:
    """结算清单诊断: ClmDiagnosisCode_1..10 as given (ICD-9); the first is the main diagnosis (flag 1,
    diag_type 1), the others secondary (flag 0, diag_type 2). A code repeated on a claim is kept once."""
    long = _melt(claims, DIAG_COLUMNS, "diag_code")
    main = long["position"] == 1
    out = pd.DataFrame({
        "setl_id": long["ClaimID"], "mdtrt_id": long["ClaimID"], "psn_no": long["BeneID"],
        "maindiag_flag": np.where(main, "1", "0"), "diag_code": long["diag_code"],
        "diag_type": np.where(main, "1", "2"),
    })
    return out.drop_duplicates(["setl_id", "diag_code"]).reset_index(drop=True)


def fee_list_d(claims: pd.DataFrame) -> pd.DataFrame:
    """费用明细, synthesised (Kaggle has none), so that the lines of a claim add up to its settlement:

    - ``<ClaimID>-C``: the whole claim amount (reimbursed + deductible) as one line, ``DRG-<code>``
      (DiagnosisGroupCode; Medicare pays a stay per DRG), 其他费 (14), billed by the attending physician;
    - ``<ClaimID>-P<i>``: one zero-priced line per ``ClmProcedureCode_i`` (ICD-9-CM procedure code as
      given), billed by the operating physician (else the attending one), charge category by ICD-9-CM
      chapter: operations 00–86 → 手术费 06, imaging 87–88, 92, 95 → 检查费 03, laboratory 90–91 →
      化验费 04, other non-operative 89, 93–94, 96–99 → 治疗费 05.
    """
    c = claims
    amount = (_money(c["InscClaimAmtReimbursed"]) + _money(c["DeductibleAmtPaid"])).round(2)
    whole = pd.DataFrame({
        "bkkp_sn": c["ClaimID"] + "-C", "setl_id": c["ClaimID"], "mdtrt_id": c["ClaimID"], "psn_no": c["BeneID"],
        "fixmedins_code": c["Provider"], "fee_ocur_time": c["DischargeDt"] + " " + DISCHARGE_TIME,
        "hilist_code": "DRG-" + c["DiagnosisGroupCode"],
        "hilist_name": "DRG " + c["DiagnosisGroupCode"] + " inpatient stay (whole claim)",
        "list_type": "201", "med_chrgitm_type": "14", "cnt": 1.0, "pric": amount, "det_item_fee_sumamt": amount,
        "bilg_dr_code": c["AttendingPhysician"],
    })
    long = _melt(c, PROC_COLUMNS, "proc")
    proc = pd.DataFrame({
        "bkkp_sn": long["ClaimID"] + "-P" + long["position"].astype(str), "setl_id": long["ClaimID"],
        "mdtrt_id": long["ClaimID"], "psn_no": long["BeneID"], "fixmedins_code": long["Provider"],
        "fee_ocur_time": long["AdmissionDt"] + " " + PROC_TIME,
        "hilist_code": long["proc"], "hilist_name": "ICD-9-CM procedure " + long["proc"],
        "list_type": "201", "med_chrgitm_type": long["proc"].map(_procedure_charge_type),
        "cnt": 1.0, "pric": 0.0, "det_item_fee_sumamt": 0.0,
        "bilg_dr_code": long["OperatingPhysician"].where(long["OperatingPhysician"].notna(),
                                                         long["AttendingPhysician"]),
    })
    return pd.concat([whole, proc], ignore_index=True).sort_values("bkkp_sn", kind="stable").reset_index(drop=True)


def labels(provider_labels: pd.DataFrame, claims: pd.DataFrame) -> pd.DataFrame:
    """标签: PotentialFraud Yes/No → 1/0 per provider with inpatient claims, ``fixmedins`` /
    ``fake_treatment`` / ``inspection``; a positive's amount is its total reimbursed amount."""
    amounts = provider_amounts(claims)
    lab = provider_labels[provider_labels["Provider"].isin(amounts.index)].sort_values("Provider")
    y = (lab["PotentialFraud"] == "Yes").astype(int).to_numpy()
    return pd.DataFrame({
        "entity_type": "fixmedins", "entity_id": lab["Provider"].to_numpy(), "label": y,
        "fraud_type": FRAUD_TYPE, "amount": np.where(y == 1, lab["Provider"].map(amounts).to_numpy(), 0.0),
        "source": LABEL_SOURCE, "decided_at": LABEL_DECIDED_AT,
    })


def provider_amounts(claims: pd.DataFrame) -> pd.Series:
    """Total InscClaimAmtReimbursed per provider: the amount-ranking baseline."""
    return _money(claims["InscClaimAmtReimbursed"]).groupby(claims["Provider"]).sum().sort_index()


def write_region(tables: dict[str, pd.DataFrame], out: Path) -> dict[str, int]:
    """Write each table as ``out/<table>.parquet`` with the contract's types; returns rows per table.

    Parquet keeps codes as strings and times as timestamps, so nothing is re-parsed on the way in.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = {}
    for name, df in tables.items():
        spec = TABLES[name]
        arrays = {f.name: _arrow(df[f.name], f.kind) for f in spec.fields if f.name in df.columns}
        pq.write_table(pa.table(arrays), out / f"{name}.parquet", compression="zstd")
        rows[name] = len(df)
    return rows


# -- the runner ------------------------------------------------------------------------------------


def cross_validated_scores(X: pd.DataFrame, y: np.ndarray, *, seed: int = 0, folds: int = 5,
                           scorer_params: dict | None = None,
                           on_fold: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Out-of-fold P(fraud) of :class:`models.scorers.FraudScorer` over stratified ``folds``.

    Each fold's scorer is fitted on the other folds only (it calibrates on its own inner folds) and
    scores its fold once. Returns (scores, fold number per row, the mode the scorer chose per fold);
    ``on_fold(k)`` is called after fold ``k`` (1-based).
    """
    from models.scorers import FraudScorer

    params = scorer_settings(seed, scorer_params)
    oof = np.zeros(len(y))
    fold_of = np.zeros(len(y), dtype=int)
    modes = []
    for k, (tr, va) in enumerate(StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, y)):
        scorer = FraudScorer(**params).fit(X.iloc[tr], y[tr])
        oof[va] = scorer.predict_proba(X.iloc[va])[:, 1]
        fold_of[va] = k
        modes.append(scorer.mode_)
        if on_fold:
            on_fold(k + 1)
    return oof, fold_of, modes


def scorer_settings(seed: int, overrides: dict | None = None) -> dict:
    """FraudScorer parameters of the benchmark: the project's defaults, ``min_positives`` 10, the seed."""
    return {"seed": seed, "min_positives": 10, **(overrides or {})}


def run_contract_benchmark(folder: Path, work_dir: Path, *, seed: int = 0, folds: int = 5,
                           providers: int | None = None, scorer_params: dict | None = None,
                           progress: Progress | None = None) -> ContractReport:
    """Map, write, ingest, build graph and features in ``work_dir``, then cross-validate the provider scorer.

    ``folder`` is ``shared/benchmarks`` or its ``kaggle-provider-fraud`` sub-folder; ``providers`` keeps
    the first n inpatient providers only (a quick check, not the benchmark). ``work_dir`` gets
    ``region/`` (the mapped contract tables) and ``warehouse.duckdb``; both are replaced on every run.
    ``progress(step, done, total)`` is called after each step and each fold.
    """
    from features.config import Settings
    from serving.pipeline import run_pipeline
    from models.levels import load_level

    tick = progress or (lambda *_: None)
    total = len(PIPELINE_STEPS) + folds
    seconds: dict[str, float] = {}
    work_dir = Path(work_dir)
    region, wh = work_dir / "region", work_dir / "warehouse.duckdb"
    settings = Settings(warehouse=wh)
    shutil.rmtree(region, ignore_errors=True)
    for stale in (wh, wh.with_name(wh.name + ".wal"), settings.identity_vault):
        stale.unlink(missing_ok=True)
    clock = [time.perf_counter()]

    def lap(step: str) -> None:
        now = time.perf_counter()
        seconds[step] = round(now - clock[0], 1)
        clock[0] = now
        tick(step, len(seconds), total)

    tick("map", 0, total)
    raw = load_raw(folder, providers=providers)
    rows = write_region(to_contract(raw), region)
    lap("map")
    # the declared pipeline (serving/pipeline.py) without the rules (the national 两库 codes are not in a US
    # extract) and with the provider level's features only
    run = run_pipeline(settings, source=region, stages=("ingest", "graph", "features"),
                       feature_tables=("feat_fixmedins",), fingerprints=False, force=True,
                       progress=lambda desc, *_: tick(desc, len(seconds), total))
    for stage in run.stages:
        seconds[stage.stage] = stage.seconds
        tick(stage.stage, len(seconds), total)
    clock[0] = time.perf_counter()
    report = run.stage("ingest").summary

    data = load_level(wh, "fixmedins")
    y = data.y
    amounts = provider_amounts(raw.inpatient).reindex(data.ids).fillna(0.0).to_numpy()
    oof, fold_of, modes = cross_validated_scores(
        data.X, y, seed=seed, folds=folds, scorer_params=scorer_params,
        on_fold=lambda k: tick(f"fold {k}/{folds}", len(PIPELINE_STEPS) + k, total))
    seconds["cross-validate"] = round(time.perf_counter() - clock[0], 1)
    return ContractReport(
        seed=seed, folds=folds, n_providers=len(y), n_fraud=int(y.sum()), n_claims=len(raw.inpatient), rows=rows,
        ingest=_ingest_figures(report),
        n_features=len(data.features), scorer={"params": scorer_settings(seed, scorer_params), "modes": modes},
        model=_figures(y, oof, fold_of), amount_ranking=_figures(y, amounts, fold_of),
        folds_beating_amount=int(sum(_pr_auc(y, oof, fold_of == k) > _pr_auc(y, amounts, fold_of == k)
                                     for k in range(folds))),
        seconds=seconds | {"total": round(sum(seconds.values()), 1)}, anchors=ANCHORS,
    )


# -- private helpers -------------------------------------------------------------------------------


def _figures(y: np.ndarray, s: np.ndarray, fold_of: np.ndarray) -> dict[str, float]:
    """Pooled out-of-fold ROC-AUC / PR-AUC, and their mean and sd over the folds."""
    per = [(roc_auc_score(y[fold_of == k], s[fold_of == k]), average_precision_score(y[fold_of == k], s[fold_of == k]))
           for k in np.unique(fold_of)]
    roc, pr = np.array(per).T
    return {"roc_auc": round(float(roc_auc_score(y, s)), 4), "pr_auc": round(float(average_precision_score(y, s)), 4),
            "roc_auc_folds": round(float(roc.mean()), 4), "roc_auc_sd": round(float(roc.std(ddof=1)), 4),
            "pr_auc_folds": round(float(pr.mean()), 4), "pr_auc_sd": round(float(pr.std(ddof=1)), 4)}


def _pr_auc(y: np.ndarray, s: np.ndarray, rows: np.ndarray) -> float:
    return float(average_precision_score(y[rows], s[rows]))


def _admdvs(state: pd.Series, county: pd.Series) -> pd.Series:
    """State, ``00``, county: the first four digits (the pooling 'city' of the features) are the state."""
    return state.astype(int).map("{:02d}".format) + "00" + county.astype(int).map("{:03d}".format)


def _person_admdvs(claims: pd.DataFrame, persons: pd.DataFrame) -> pd.Series:
    return claims["BeneID"].map(persons.set_index("psn_no")["insu_admdvs"])


def _money(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s, errors="coerce").fillna(0.0).astype(float)


def _days(start: pd.Series, end: pd.Series) -> pd.Series:
    return (pd.to_datetime(end) - pd.to_datetime(start)).dt.days.astype("int32")


def _melt(claims: pd.DataFrame, columns: tuple[str, ...], name: str) -> pd.DataFrame:
    """One row per present code of ``columns``, with its 1-based position and the claim's fields."""
    present = [c for c in columns if c in claims.columns]
    keep = [c for c in claims.columns if c not in present]
    long = claims.melt(id_vars=keep, value_vars=present, var_name="position", value_name=name)
    long = long[long[name].notna()].copy()
    long["position"] = long["position"].str.rsplit("_", n=1).str[1].astype(int)
    return long.sort_values(["ClaimID", "position"], kind="stable").reset_index(drop=True)


def _procedure_charge_type(code: str) -> str:
    """med_chrgitm_type of an ICD-9-CM procedure code by its two-digit chapter (see ``fee_list_d``).

    Kaggle's codes went through a number format upstream, so a leading zero may be lost ("331" is 33.1
    or 03.31); the first two digits are read as the chapter either way.
    """
    chapter = int(code[:2]) if code[:2].isdigit() else -1
    if 0 <= chapter <= 86:
        return "06"
    if chapter in (87, 88, 92, 95):
        return "03"
    if chapter in (90, 91):
        return "04"
    return "05"


def _arrow(s: pd.Series, kind: str) -> pa.Array:
    if kind == "datetime":
        return pa.array(pd.to_datetime(s).to_numpy().astype("datetime64[s]"), type=pa.timestamp("s"), from_pandas=True)
    if kind == "date":
        return pa.array(pd.to_datetime(s).to_numpy().astype("datetime64[D]"), type=pa.date32(), from_pandas=True)
    if kind in ("amount", "number"):
        return pa.array(pd.to_numeric(s).to_numpy(dtype=float), type=pa.float64())
    if kind == "int":
        return pa.array(pd.to_numeric(s).to_numpy(), type=pa.int32())
    return pa.array([None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in s],
                    type=pa.string())


def _ingest_figures(ingest: dict) -> dict[str, object]:
    """Rows in, loaded and quarantined, and the quarantine reasons, from the pipeline's ingest summary
    (``features.ingest.IngestReport.to_dict``)."""
    totals = ingest["totals"]
    return {"rows_in": totals["rows_in"], "loaded": totals["loaded"], "quarantined": totals["quarantined"],
            "reasons": {f"{r['table']}:{r['reason_code']}": r["rows"] for r in ingest["reasons"]}}
