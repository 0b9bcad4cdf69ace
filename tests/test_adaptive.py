"""The transferability stage on a real grid with three trained sources: the adaptive grid
(estimate, then fine-tune only the top source), then the same grid in full, whose τ table,
CKA curves and saved compute are checked against the files they come from."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.stats import kendalltau

from .conftest import REPO, snakemake, write_config

pytestmark = pytest.mark.slow

TRAINED = ["natural", "catdog", "chest"]
REPORTS = [
    "results/vgg16/transferability/tau.md",
    "results/vgg16/probes/blood/cka.png",
]
ADAPTIVE_REPORT = "results/vgg16/transferability/adaptive.md"


def three_source_config(path: Path, data_root: Path, adaptive: dict) -> Path:
    """The small grid on blood cells with Natural Images, Cats vs Dogs and PneumoniaMNIST
    as trained sources (1 epoch each: the estimates need not be good, only real)."""
    small = yaml.safe_load((REPO / "tests/configs/small.yaml").read_text())
    datasets = {
        **small["datasets"],
        "cats_vs_dogs": {"adapter": "folder", "path": "cats_vs_dogs_sample"},
        "pneumoniamnist": {
            "adapter": "npz",
            "path": "pneumoniamnist/pneumoniamnist_reassembled.npz",
            "label_names": ["normal", "pneumonia"],
        },
    }
    tasks = {
        **small["tasks"],
        "catdog": {"dataset": "cats_vs_dogs", "max_per_class": 60},
        "chest": {"dataset": "pneumoniamnist", "max_per_class": 60},
    }
    return write_config(
        path,
        data_root,
        datasets=datasets,
        tasks=tasks,
        sources=["none", *TRAINED],
        targets=["blood"],
        learning_curve={},
        pretrain={"epochs": 1, "batch_size": 32},
        finetune={"epochs": 1, "batch_size": 32},
        adaptive=adaptive,
    )


def finetuned_in_log(output: str) -> set[tuple[str, str, int]]:
    """(target, source, seed) of every finetune job Snakemake ran, from its job listing."""
    jobs = re.findall(r"rule finetune:\n(?:.*\n)*?\s+wildcards: ([^\n]+)", output)
    found = set()
    for job in jobs:
        values = dict(part.split("=", 1) for part in job.split(", "))
        found.add((values["target"], values["source"], int(values["seed"])))
    return found


@pytest.fixture(scope="module")
def adaptive_grid(tmp_path_factory, shared_data):
    workdir = tmp_path_factory.mktemp("adaptive")
    config = three_source_config(workdir / "adaptive.yaml", shared_data, {"top_k": 1})
    result = snakemake(workdir, config, "--cores", "2", ADAPTIVE_REPORT, *REPORTS, timeout=900)
    return workdir, finetuned_in_log(result.stdout + result.stderr)


@pytest.fixture(scope="module")
def full_grid(adaptive_grid, shared_data):
    """The same grid in full, in the same folder (only the left-out fine-tuning runs), then
    the adaptive report again: now with the full run's benchmark files."""
    workdir, _ = adaptive_grid
    full = three_source_config(workdir / "full.yaml", shared_data, {})
    snakemake(workdir, full, "--cores", "2", *REPORTS, timeout=900)
    adaptive = workdir / "adaptive.yaml"
    # the target first: --forcerun takes every rule name after it
    snakemake(workdir, adaptive, "--cores", "1", ADAPTIVE_REPORT, "--forcerun", "adaptive_report")
    return workdir


def test_adaptive_grid_fine_tunes_only_the_top_source(adaptive_grid):
    workdir, finetuned = adaptive_grid
    estimates = pd.concat(
        pd.read_csv(workdir / f"results/vgg16/transferability/blood/{s}.csv") for s in TRAINED
    )
    logme = estimates[estimates.estimator == "logme"].set_index(["seed", "source"]).score
    # each seed chooses from its own estimates (its train+val rows)
    best = {seed: logme.loc[seed].idxmax() for seed in (0, 1)}
    # the DAG Snakemake ran: No transfer and each seed's chosen source, nothing else
    expected = {("blood", "none", seed) for seed in (0, 1)}
    assert finetuned == expected | {("blood", best[seed], seed) for seed in (0, 1)}
    tuned_on_disk = {p.name for p in (workdir / "results/vgg16/finetune/blood").iterdir()}
    assert tuned_on_disk == {"none", *best.values()}
    report = (workdir / ADAPTIVE_REPORT).read_text()
    for seed in (0, 1):
        chosen_file = workdir / f"results/vgg16/transferability/blood/chosen_seed{seed}.json"
        chosen = json.loads(chosen_file.read_text())
        assert chosen["selected"] == [best[seed]] and chosen["seed"] == seed
        for source in set(TRAINED) - {best[seed]}:
            assert f"| blood | {seed} | {source} | {logme[(seed, source)]:.6g} |" in report
    assert "Fine-tuning jobs left out: 4 of 8" in report  # 2 sources x 2 seeds
    # FE runs of every source are kept: they are cheap, and the tau table compares them
    fe_runs = list((workdir / "results/vgg16/runs/blood").glob("*/fe-svm/seed*.json"))
    assert len(fe_runs) == 4 * 2


def test_tau_recomputed_from_the_estimates_and_the_run_records(full_grid):
    estimates = pd.read_csv(full_grid / "results/vgg16/transferability/estimates.csv")
    tau = pd.read_csv(full_grid / "results/vgg16/transferability/tau.csv")
    runs = [
        json.loads(p.read_text())
        for p in (full_grid / "results/vgg16/runs/blood").glob("*/ft-svm/seed*.json")
    ]
    auc = {(r["source"], r["seed"]): r["auc_macro"] for r in runs}
    gains = {s: np.mean([auc[(s, seed)] - auc[("none", seed)] for seed in (0, 1)]) for s in TRAINED}
    for estimator in ("logme", "gbc", "nleep"):
        scores = estimates[estimates.estimator == estimator].groupby("source").score.mean()
        expected = kendalltau([scores[s] for s in TRAINED], [gains[s] for s in TRAINED])
        row = tau[(tau.estimator == estimator) & (tau.gain == "ft")].iloc[0]
        assert row.n_sources == 3
        if np.isfinite(expected.statistic):
            assert row.tau == pytest.approx(expected.statistic, abs=1e-6)
            assert row.tau_low <= row.tau + 1e-9 and row.tau_high >= row.tau_low
    # LEEP and NCE exist for the trained sources (their own softmax), not for 'none'
    leep = estimates[estimates.estimator == "leep"].set_index(["source", "seed"]).score
    assert leep.loc["none"].isna().all() and leep.loc[TRAINED].notna().all()
    assert (full_grid / "results/vgg16/transferability/estimates.png").stat().st_size > 0


def test_cka_curves_for_every_finetuned_run(full_grid):
    cka = pd.read_csv(full_grid / "results/vgg16/probes/blood/cka.csv")
    runs = {(s, seed) for s in ["none", *TRAINED] for seed in (0, 1)}
    assert set(zip(cka.source, cka.seed, strict=True)) == runs
    depths = cka.groupby(["source", "seed"]).depth.apply(list)
    assert all(found == [1, 2, 3, 4, 5] for found in depths)
    assert cka.cka.between(-1, 1 + 1e-9).all()  # debiased CKA can dip below 0
    assert set(cka.estimator) == {"debiased linear CKA (unbiased HSIC, Song et al. 2012)"}
    knn = pd.read_csv(full_grid / "results/vgg16/probes/blood/natural_knn.csv")
    assert set(knn.depth) == {1, 2, 3, 4, 5} and knn.accuracy.between(0, 1).all()


def test_adaptive_report_counts_seconds_from_an_equivalent_full_run(full_grid):
    table = pd.read_csv(full_grid / "results/vgg16/transferability/adaptive.csv")
    # a row per (seed, left-out source): 2 seeds x 2 sources, one fine-tuning job each
    assert len(table) == 4 and (table.finetune_jobs_saved == 1).all()
    for row in table.itertuples():
        name = f"blood_{row.source}_all_seed{row.seed}.tsv"
        benchmark = full_grid / "results/benchmarks/finetune/vgg16" / name
        seconds = pd.read_csv(benchmark, sep="\t")["s"].iloc[0]
        assert row.seconds_saved == pytest.approx(seconds, rel=1e-4)
    assert "s of job time in an equivalent full run" in (full_grid / ADAPTIVE_REPORT).read_text()
