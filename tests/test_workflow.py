"""The real workflow on real sample data: prepare/split, the small grid, its DAG, reports."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from medtransfer.jobs import WARM_NOTE

from .conftest import NATURAL_IMAGES_COUNTS, REPO, read_config, snakemake, write_config

pytestmark = pytest.mark.slow

README_COUNTS = {
    "natural": NATURAL_IMAGES_COUNTS,
    "catdog": {"cat": 401, "dog": 401},
    "chest": {"normal": 1214 + 135 + 234, "pneumonia": 3494 + 389 + 390},
    "isic": {"benign": 398, "malignant": 159},
    "blood": {
        "EOSINOPHIL": 250 + 623,
        "LYMPHOCYTE": 250 + 620,
        "MONOCYTE": 250 + 620,
        "NEUTROPHIL": 250 + 624,
    },
}


def run_json(workdir: Path, path: str) -> dict:
    return json.loads((workdir / "results/vgg16/runs" / path).read_text())


RUN_FIELDS = {
    "auc_macro",
    "auc_per_class",
    "accuracy",
    "kappa",
    "kappa_quadratic",
    "f1_per_class",
    "f1_micro",
    "f1_macro",
    "confusion_matrix",
    "classes",
    "sizes",
    "epochs_run",
    "best_epoch",
    "wall_time_s",
    "versions",
    "config_hash",
    "skipped_images",
    "leakage",
    "architecture",
    "keras_backend",
    "classifier_converged",
    "hosts",
}


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run."""
    table = output.split("Job stats:", 1)[1]
    return {
        m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m[1] != "total"
    }


def test_prepare_and_split_match_the_data_readme(tmp_path, shared_data):
    config = write_config(tmp_path / "c.yaml", shared_data, "prepare.yaml")
    targets = [f"results/tasks/{t}/32px/meta.json" for t in README_COUNTS]
    targets += [f"results/splits/{t}/seed0.json" for t in README_COUNTS]
    snakemake(tmp_path, config, "--cores", "2", *targets)
    for task, expected in README_COUNTS.items():
        meta = json.loads((tmp_path / f"results/tasks/{task}/32px/meta.json").read_text())
        skipped = len(meta["skipped"])
        assert sum(meta["counts"].values()) == sum(expected.values()) - skipped
        assert skipped == 0 and meta["counts"] == expected
        images = np.load(
            tmp_path / f"results/prepared/{meta['dataset']}/32px/images.npy", mmap_mode="r"
        )
        assert images.shape == (meta["n_images"], 32, 32, 3)
    chest = json.loads((tmp_path / "results/splits/chest/seed0.json").read_text())
    assert chest["counts"]["test"] == [234, 390]  # PneumoniaMNIST's own test split


def test_small_grid_writes_every_run(small_grid):
    runs = [
        p for p in (small_grid / "results/vgg16/runs").rglob("seed*.json") if "_frac" not in p.name
    ]
    assert len(runs) == 2 * 2 * 2 * 2
    for path in runs:
        run = json.loads(path.read_text())
        assert RUN_FIELDS <= set(run), path
        assert 0.0 <= run["auc_macro"] <= 1.0
        assert len(run["test_labels"]) == run["sizes"]["test"]
        assert run["kappa_quadratic"] is None  # no task of the grid is ordinal
        assert run["classifier_converged"] is True  # every SVM of the grid converged
        assert run["hosts"]["network"] == run["hosts"]["score"]  # one machine ran the grid
        assert run["hosts"]["score"]["cpu"] != "unknown"
        leakage = run["leakage"]
        assert leakage["train_test"] == {"groups_crossing": 0, "exact": 0, "near": 0}
        assert leakage["source_target"]["audited"] and leakage["source_target"]["exact"] == 0


def test_dag_has_one_job_per_unit_of_work(tmp_path, shared_data):
    config = write_config(tmp_path / "c.yaml", shared_data)
    counts = job_counts(snakemake(tmp_path, config, "-n", "--cores", "2").stdout)
    # 3 tasks; splits: 2 targets x 2 seeds + 1 for pretraining; natural is the one trained
    # source; extract per (source, target); finetune per (source, target, seed); score per run
    assert counts == {
        "prepare": 3,
        "select": 3,
        # the audit: duplicates within each of the 3 tasks; natural's images in each target
        "audit": 3,
        "audit_overlap": 2,
        "audit_report": 1,
        "split": 5,
        "pretrain": 1,
        "extract": 4,
        "finetune": 8,
        "score": 16,
        "table2": 1,
        "figure": 1,
        "filters": 2,  # natural, and the untrained network as the structural null
        "structural": 1,
        "target_report": 2,
        "analyse": 1,
        # transferability per (source, target) from extract's outputs; its tau report; the
        # CKA/k-NN probes per target
        "estimate": 4,
        "transferability": 1,
        "probes": 2,
        # the learning-curve axis: isic, none, ft-svm, 2 seeds, fraction 0.5
        "subsample": 2,
        "finetune_fraction": 2,
        "score_fraction": 2,
        "learning_curve": 1,
        # the first architecture's Table II (csv, md, tex) and Figure 3 as the grid's
        "primary": 4,
        "all": 1,
    }


def test_adding_a_classifier_adds_only_score_jobs(small_grid, shared_data):
    config = write_config(
        small_grid / "more.yaml", shared_data, methods=["fe-svm", "ft-svm", "fe-logreg", "ft-head"]
    )
    counts = job_counts(snakemake(small_grid, config, "-n", "--cores", "2").stdout)
    assert counts.pop("score") == 16
    report_jobs = {"table2", "figure", "structural", "target_report", "analyse", "primary",
                   "transferability"}  # fmt: skip
    assert set(counts) <= report_jobs | {"learning_curve", "all"}


def test_changed_settings_rerun_exactly_what_reads_them(small_grid, shared_data):
    """Every setting a job reads is a param of its rule: changing one reruns its readers."""
    grouped = write_config(
        small_grid / "groups.yaml",
        shared_data,
        report={"filters_per_layer": 4, "filter_steps": 5, "groups": {"Skin": ["isic"]}},
    )
    counts = job_counts(snakemake(small_grid, grouped, "-n", "--cores", "2").stdout)
    assert set(counts) == {"table2", "figure", "structural", "analyse", "primary", "all"}
    longer = write_config(
        small_grid / "epochs.yaml", shared_data, finetune={"epochs": 3, "batch_size": 32}
    )
    counts = job_counts(snakemake(small_grid, longer, "-n", "--cores", "2").stdout)
    assert counts.pop("finetune") == 8 and counts.pop("finetune_fraction") == 2
    assert counts.pop("score") == 8 and counts.pop("score_fraction") == 2  # the FT runs
    assert set(counts) == {"table2", "figure", "structural", "analyse", "target_report",
                           "learning_curve", "primary", "transferability", "probes",
                           "all"}  # fmt: skip


def test_another_spelling_of_data_root_reruns_nothing(small_grid, shared_data):
    """Relative instead of absolute, with a trailing slash: the same folder, no job."""
    config = yaml.safe_load((small_grid / "config.yaml").read_text())
    config["data_root"] = os.path.relpath(shared_data, small_grid) + "/"
    respelled = small_grid / "respelled.yaml"
    respelled.write_text(yaml.safe_dump(config, sort_keys=False))  # key order is in params
    result = snakemake(small_grid, respelled, "-n", "--cores", "2")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_a_missing_data_root_stops_before_any_job_and_deletes_nothing(small_grid):
    before = sorted(str(p) for p in (small_grid / "results").rglob("*"))
    config = yaml.safe_load((small_grid / "config.yaml").read_text())
    config["data_root"] = str(small_grid / "no_such_folder")
    missing = small_grid / "missing.yaml"
    missing.write_text(yaml.safe_dump(config, sort_keys=False))
    result = snakemake(small_grid, missing, "--cores", "2", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"{small_grid / 'no_such_folder'}' is not a folder" in output
    assert f"datasets.isic_archive.path: {small_grid / 'no_such_folder'}/isic" in output
    assert sorted(str(p) for p in (small_grid / "results").rglob("*")) == before


def test_a_failed_table_leaves_no_stale_copy_and_names_the_file(small_grid, copy_of):
    """A truncated run file: Table II's rebuild fails naming it, and results/table2.* (the
    first architecture's copies) go with the failed originals instead of showing old rows."""
    workdir = copy_of(small_grid)
    run = workdir / "results/vgg16/runs/isic/none/fe-svm/seed0.json"
    run.write_text(run.read_text()[:200])
    result = snakemake(workdir, workdir / "config.yaml", "results/table2.csv", check=False)
    assert result.returncode != 0
    assert "runs/isic/none/fe-svm/seed0.json" in result.stdout + result.stderr
    assert not (workdir / "results/vgg16/table2.csv").exists()
    assert not list((workdir / "results").glob("table2.*"))


def test_the_table_alone_needs_no_flags(small_grid):
    """`snakemake results/table2.csv` as the README writes it: the default workflow
    profile gives the cores."""
    result = snakemake(small_grid, small_grid / "config.yaml", "results/table2.csv")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_second_run_schedules_nothing(small_grid):
    result = snakemake(small_grid, small_grid / "config.yaml", "-n", "--cores", "2")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_rerun_gives_identical_metrics(small_grid, copy_of):
    """The grid's jobs ran in forks of the warm interpreter; the same jobs, each in a fresh
    process, give the same numbers to the last digit."""
    workdir = copy_of(small_grid)
    run = Path("results/vgg16/runs/blood/natural/ft-svm/seed0.json")
    before = json.loads((workdir / run).read_text())
    trained = workdir / "results/vgg16/finetune/blood/natural/all/seed0/training.json"
    trained_at = trained.stat().st_mtime_ns
    log = workdir / "logs/finetune/vgg16/blood_natural_all_seed0.log"
    assert WARM_NOTE in log.read_text()
    snakemake(workdir, workdir / "config.yaml", "--cores", "2", str(run), "--forcerun",
              "finetune", "--config", "warm_start=False")  # fmt: skip
    after = json.loads((workdir / run).read_text())
    assert trained.stat().st_mtime_ns > trained_at  # the network really was trained again
    assert WARM_NOTE not in log.read_text().split("rule finetune")[-1]  # a process of its own
    for key in (
        "auc_macro",
        "auc_per_class",
        "accuracy",
        "f1_per_class",
        "confusion_matrix",
        "test_scores",
    ):
        assert after[key] == before[key], key


def test_table2_matches_config_and_runs(small_grid):
    lines = (small_grid / "results/table2.md").read_text().split("\n\n")[0].splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == ["Target", "No transfer", "natural FE", "natural FT"]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    assert [r[0] for r in rows] == ["isic", "Differences", "blood", "Differences"]
    rows = [[cell.removesuffix(" ↑").removesuffix(" ↓") for cell in row] for row in rows]
    aucs = [run_json(small_grid, f"blood/natural/fe-svm/seed{s}.json")["auc_macro"] for s in (0, 1)]
    mean = sum(aucs) / 2
    assert rows[2][2] == f"{mean:.3f} ± {max(abs(a - mean) for a in aucs):.3f}"
    ft, fe = (float(rows[0][3].split(" ± ")[0]), float(rows[0][2].split(" ± ")[0]))
    assert abs(float(rows[1][3]) - (ft - fe)) <= 0.0015
    assert "\\begin{tabular}" in (small_grid / "results/table2.tex").read_text()
    tidy = pd.read_csv(small_grid / "results/table2.csv")
    assert set(tidy.columns) >= {
        "target",
        "source",
        "method",
        "mean",
        "max_deviation",
        "std",
        "n_seeds",
        "files",
    }
    assert (tidy.n_seeds == 2).all()


def test_figure_data_matches_the_table(small_grid):
    assert (small_grid / "results/figure3.png").stat().st_size > 10_000
    data = pd.read_csv(small_grid / "results/vgg16/figure3.csv")
    tidy = pd.read_csv(small_grid / "results/table2.csv")
    ft = tidy[(tidy.source == "natural") & (tidy.method == "ft-svm")]["mean"].mean()
    row = data[(data.source == "natural") & (data.kind == "FT")]
    assert row.mean_auc.iloc[0] == pytest.approx(ft, abs=1e-6)


def test_filter_grids_exist_for_every_source_model(small_grid):
    folder = small_grid / "results/vgg16/filters/natural"
    for name in ("block1_conv2", "block2_conv2", "block3_conv1"):
        assert (folder / "layers" / f"{name}.png").is_file()
    assert (folder / "kernels.png").is_file()
    structural = pd.read_csv(small_grid / "results/vgg16/filters/structural.csv")
    assert list(structural.source) == ["natural"]
    assert 0 <= structural.structural_percent.iloc[0] <= 100
    null = json.loads((small_grid / "results/vgg16/filters/none/structural.json").read_text())
    assert structural.untrained_percent.iloc[0] == pytest.approx(
        null["structural_percent"], abs=1e-4
    )  # the CSV holds 4 decimals
    assert structural.above_untrained.iloc[0] == pytest.approx(
        structural.structural_percent.iloc[0] - null["structural_percent"], abs=1e-3
    )


def test_one_target_table_schedules_only_that_target(tmp_path, shared_data):
    config = write_config(tmp_path / "c.yaml", shared_data)
    out = snakemake(tmp_path, config, "-n", "--cores", "2", "results/vgg16/isic/table2.csv").stdout
    assert "/blood/" not in out and "target=blood" not in out and "task=blood" not in out
    assert "results/vgg16/runs/isic/natural/ft-svm/seed1.json" in out


def test_html_report(small_grid, copy_of):
    workdir = copy_of(small_grid)
    result = snakemake(workdir, workdir / "config.yaml", "--report", "report.html")
    html = (workdir / "report.html").read_text(errors="replace")
    assert "table2.csv" in html and "figure3.png" in html and "block1_conv2.png" in html
    assert "Duplicate explicit target name" not in result.stdout + result.stderr


def test_html_report_of_a_partial_grid(small_grid, copy_of):
    """A grid stopped after its source networks: the report shows what has been built."""
    workdir = copy_of(small_grid)
    upstream = {"prepared", "tasks", "splits", "audit", "models"}
    for path in (workdir / "results").iterdir():
        if path.name not in {"vgg16", *upstream}:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    for path in (workdir / "results" / "vgg16").iterdir():
        if path.name not in upstream:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    snakemake(workdir, workdir / "config.yaml", "--report", "report.html")
    html = (workdir / "report.html").read_text(errors="replace")
    assert "history.csv" in html or "summary.md" in html


def test_stats_recompute_an_interval_and_a_difference(small_grid):
    import numpy as np
    from scipy.stats import t as scipy_t

    from medtransfer.runs import RunRecord
    from medtransfer.stats import AucDraws

    per_run = pd.read_csv(small_grid / "results/vgg16/stats_runs.csv")
    row = per_run[
        (per_run.target == "blood")
        & (per_run.source == "natural")
        & (per_run.method == "ft-svm")
        & (per_run.seed == 1)
    ].iloc[0]
    run = run_json(small_grid, "blood/natural/ft-svm/seed1.json")
    low, high = np.nanpercentile(AucDraws()(RunRecord.from_json(run)), [2.5, 97.5])
    assert (row.ci_low, row.ci_high) == pytest.approx((low, high), abs=1e-6)
    assert low < run["auc_macro"] < high
    stats = pd.read_csv(small_grid / "results/vgg16/stats.csv")
    diff = stats[
        (stats.target == "blood")
        & (stats.source == "natural")
        & (stats.comparison == "ft-svm - fe-svm")
    ].iloc[0]
    aucs = {
        m: [run_json(small_grid, f"blood/natural/{m}/seed{s}.json")["auc_macro"] for s in (0, 1)]
        for m in ("ft-svm", "fe-svm")
    }
    expected = sum(a - b for a, b in zip(aucs["ft-svm"], aucs["fe-svm"], strict=True)) / 2
    assert diff.mean_difference == pytest.approx(expected, abs=1e-6)
    assert diff.ci_low <= diff.ci_high and diff.n_seeds == 2
    # the corrected resampled t-test by hand, from the run files' AUCs and split sizes
    sizes = run_json(small_grid, "blood/natural/ft-svm/seed0.json")["sizes"]
    ratios = [
        run_json(small_grid, f"blood/natural/ft-svm/seed{s}.json")["sizes"]["test"]
        / run_json(small_grid, f"blood/natural/ft-svm/seed{s}.json")["sizes"]["train"]
        for s in (0, 1)
    ]
    d = np.subtract(aucs["ft-svm"], aucs["fe-svm"])
    t = d.mean() / np.sqrt((1 / 2 + np.mean(ratios)) * np.var(d, ddof=1))
    # stats.csv holds 6 decimals (io.write_csv): a relative tolerance failed on a p of 0.275
    assert sizes["test"] > 0 and diff.test_train_ratio == pytest.approx(np.mean(ratios), abs=1e-6)
    assert diff.p_corrected_t == pytest.approx(2 * scipy_t.sf(abs(t), 1), abs=1e-6)
    table = (small_grid / "results/table2.md").read_text()
    marked = "↑" in table.split("\n\n")[0] or "↓" in table.split("\n\n")[0]
    assert marked == bool((stats["mark"] != 0).any())
    assert (stats.p_adjusted >= stats.p_corrected_t).all()
    assert "Cells: macro one-vs-rest ROC AUC, mean ± maximum deviation over seeds." in table
    assert f"Holm over the {len(stats)} comparisons of this table" in table


def test_per_target_report(small_grid):
    folder = small_grid / "results" / "vgg16" / "blood"
    for name in ("roc.png", "confusion.png", "training_curves.png", "classification_report.txt"):
        assert (folder / name).stat().st_size > 0, name
    f1 = pd.read_csv(folder / "f1.csv")
    assert len(f1) == 4 and list(f1.columns[2:6]) == [
        "EOSINOPHIL",
        "LYMPHOCYTE",
        "MONOCYTE",
        "NEUTROPHIL",
    ]
    runs = [
        json.loads((small_grid / f"results/vgg16/runs/blood/none/fe-svm/seed{s}.json").read_text())
        for s in (0, 1)
    ]
    row = f1[(f1.source == "none") & (f1.method == "fe-svm")].iloc[0]
    assert row["macro"] == pytest.approx(sum(r["f1_macro"] for r in runs) / 2, abs=1e-6)
    assert "EOSINOPHIL" in (folder / "classification_report.txt").read_text()
    clinical = pd.read_csv(folder / "metrics.csv")
    row = clinical[(clinical.source == "none") & (clinical.method == "fe-svm")].iloc[0]
    assert row["balanced_accuracy"] == pytest.approx(
        sum(r["balanced_accuracy"] for r in runs) / 2, abs=1e-6
    )
    assert np.isnan(row["ece"]) and np.isnan(row["brier"])  # SVM margins: no calibration
    assert runs[0]["image_size"] == 32 and runs[0]["scores_are_probabilities"] is False


def test_similarity_and_data_per_class(small_grid):
    import numpy as np

    from medtransfer.analysis import rank_correlation, sample_distance

    folder = small_grid / "results" / "vgg16" / "analysis"
    similarity = pd.read_csv(folder / "similarity.csv")
    assert set(zip(similarity.source, similarity.target, strict=True)) == {
        ("natural", "isic"),
        ("natural", "blood"),
    }
    row = similarity[similarity.target == "blood"].iloc[0]
    source = np.load(small_grid / "results/vgg16/models/natural/features.npy")
    info = json.loads((small_grid / "results/vgg16/models/natural/source.json").read_text())
    target = np.load(small_grid / "results/vgg16/features/blood/natural.npy")
    meta = json.loads((small_grid / "results/tasks/blood/32px/meta.json").read_text())
    distance, n, components = sample_distance(
        source, np.array(info["feature_sample_labels"]), target, np.array(meta["labels"])
    )
    assert row.frechet_distance == pytest.approx(distance, abs=1e-6)  # 6 decimals in the CSV
    assert row.sample_size == n == min(len(source), len(target)) and components < n

    def mean_auc(source_name):
        return (
            sum(
                json.loads(
                    (
                        small_grid / f"results/vgg16/runs/blood/{source_name}/ft-svm/seed{s}.json"
                    ).read_text()
                )["auc_macro"]
                for s in (0, 1)
            )
            / 2
        )

    assert row.ft_gain == pytest.approx(mean_auc("natural") - mean_auc("none"), abs=1e-6)
    correlations = pd.read_csv(folder / "correlations.csv")
    written = correlations[
        (correlations.analysis == "similarity")
        & (correlations.scope == "pooled")
        & (correlations.gain == "ft_gain")
    ].iloc[0]
    rho, _ = rank_correlation(similarity.frechet_distance, similarity.ft_gain)
    assert (pd.isna(written.spearman_rho) and pd.isna(rho)) or written.spearman_rho == rho
    assert written.n_points == 2
    assert "within natural" in set(correlations.scope)
    for name in ("similarity.png", "data_per_class.png"):
        assert (folder / name).stat().st_size > 10_000


def test_learning_curve(small_grid):
    curve = pd.read_csv(small_grid / "results/vgg16/analysis/learning_curves.csv")
    assert sorted(curve.fraction) == [0.5, 1.0]
    half = run_json(small_grid, "isic/none/ft-svm/seed0_frac0.5.json")
    full = run_json(small_grid, "isic/none/ft-svm/seed0.json")
    assert half["train_fraction"] == 0.5 and half["sizes"]["test"] == full["sizes"]["test"]
    assert abs(half["sizes"]["train"] - full["sizes"]["train"] / 2) <= 2
    assert (small_grid / "results/vgg16/analysis/learning_curves.png").stat().st_size > 10_000


PAPER_CONFIG_JOBS = {
    # three sizes x two networks: each network's jobs once per size, the data decoded once
    # per size, the splits and the audit once
    "resolution": {
        "download": 3,
        "fetch_imagenet": 6,
        "prepare": 9,
        "select": 9,
        "audit": 3,
        "split": 9,
        "extract": 36,
        "finetune": 108,
        "score": 216,
        "table2": 6,
        "compare_architectures": 1,
        "compare_resolutions": 1,
    },
    # fok2019 on three networks: every network-dependent job three times (the README's
    # count); data, splits and the audit once
    "architectures": {
        "fetch_imagenet": 3,
        "prepare": 6,
        "select": 8,
        "audit": 8,
        "audit_overlap": 19,
        "split": 19,
        "pretrain": 12,
        "extract": 87,
        "finetune": 261,
        "score": 522,
        "filters": 18,
        "table2": 3,
        "compare_architectures": 1,
        "estimate": 87,  # one per extract
        "transferability": 3,
    },
    # 6 sources (none, imagenet, 4 trained) x 5 targets less chest -> chest = 29 pairs;
    # 8 tasks on 6 datasets (the three ISIC tasks share one); splits: 5 targets x 3 seeds +
    # 4 pretraining splits (chest's seed 0 differs from its target seeds 1-3)
    "fok2019": {
        "fetch_imagenet": 1,
        "prepare": 6,
        "select": 8,
        # 5 targets + 3 trained sources that are no target; 4 trained sources x 5 targets
        # less chest -> chest
        "audit": 8,
        "audit_overlap": 19,
        "split": 19,
        "pretrain": 4,
        "extract": 29,
        "finetune": 87,
        "score": 174,
        "filters": 6,
    },
    # no FE method: extract only for the transferability estimates (2 sources x 2 targets);
    # 2 sources x 2 targets x 4 freezing variants x 3 seeds; scores: those 48 plus DT and RF
    # on pixels per target and seed (12)
    "patel2019": {
        "fetch_imagenet": 1,
        "prepare": 2,
        "select": 2,
        "audit": 2,
        "split": 6,
        "extract": 4,
        "estimate": 4,
        "probes": 2,
        "finetune": 48,
        "score": 60,
        "filters": 2,
    },
    # MedMNIST at 28 px (the quick start): 4 files downloaded; 3 sources (2 trained) x 3
    # targets less derma -> derma = 8 pairs; pneumonia's official split; 3 seeds
    "demo-medmnist": {
        "download": 4,
        "prepare": 4,
        "select": 4,
        "audit": 4,
        "audit_overlap": 5,
        "split": 11,
        "pretrain": 2,
        "extract": 8,
        "finetune": 24,
        "score": 48,
    },
    # the demo with its extras: config.yaml's 2 targets plus chest (whose own data is N.A.),
    # EfficientNetB0 fine-tuned from none and natural on blood (2 seeds), learning curves on
    # ISIC (2 fractions x 2 sources x 2 methods x 3 seeds); ImageNet left out offline
    "demo-full": {
        "pretrain": 4,
        "finetune": 37,
        "score": 70,
        "finetune_fraction": 12,
        "score_fraction": 24,
        "compare_architectures": 1,
    },
    # ImageNet only: one extract; 2 fine-tuning variants x 3 seeds; 5 methods x 3 seeds
    "pal2016": {
        "fetch_imagenet": 1,
        "prepare": 1,
        "select": 1,
        "split": 3,
        "audit": 1,
        "extract": 1,
        "finetune": 6,
        "score": 15,
        "filters": 2,
    },
}


def placeholder_data(config_file: Path, root: Path) -> Path:
    """Empty stand-ins for the dataset paths of a config that no download provides (the
    plan checks that they exist)."""
    config = read_config(config_file)
    for spec in config["datasets"].values():
        if "download" in spec:
            continue
        path = root / spec["path"]
        if path.suffix:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        else:
            path.mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture(scope="module")
def paper_dry_runs(tmp_path_factory) -> dict[str, str]:
    """The dry-run output of each paper config (they need GPUs and full downloads)."""
    from concurrent.futures import ThreadPoolExecutor

    def dry_run(name: str) -> str:
        workdir = tmp_path_factory.mktemp(name)
        config = REPO / "config" / f"{name}.yaml"
        data = placeholder_data(config, workdir / "data")
        return snakemake(
            workdir, config, "-n", "--cores", "8", "--config", f"data_root={data}"
        ).stdout

    with ThreadPoolExecutor(2) as pool:  # each is mostly one process's start-up and DAG
        return dict(zip(PAPER_CONFIG_JOBS, pool.map(dry_run, PAPER_CONFIG_JOBS), strict=True))


@pytest.mark.parametrize("name", sorted(PAPER_CONFIG_JOBS))
def test_paper_configs_dry_run(paper_dry_runs, name):
    counts = job_counts(paper_dry_runs[name])
    for rule, expected in PAPER_CONFIG_JOBS[name].items():
        assert counts.get(rule, 0) == expected, (rule, counts)


def planned_jobs(output: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, wildcards) of every job a dry run lists."""
    jobs = []
    for block in re.split(r"^(?=rule \w+:$)", output, flags=re.M):
        head = re.match(r"rule (\w+):$", block, re.M)
        if not head:
            continue
        found = re.search(r"^\s+wildcards: (.*)$", block, re.M)
        pairs = found[1].split(", ") if found else []
        jobs.append((head[1], dict(pair.split("=", 1) for pair in pairs)))
    return jobs


def units(jobs, rule: str, *keys: str) -> list[tuple[str, ...]]:
    return [tuple(w[k] for k in keys) for r, w in jobs if r == rule]


@pytest.mark.parametrize("name", ["fok2019", "pal2016", "architectures"])
def test_no_work_is_planned_twice(paper_dry_runs, name):
    """Each dataset decoded once per size, each source trained once per architecture,
    features of a (source, target) extracted once for all seeds and classifiers."""
    config = read_config(REPO / "config" / f"{name}.yaml")
    archs = config.get("architectures", ["vgg16"])
    jobs = planned_jobs(paper_dry_runs[name])
    prepared = units(jobs, "prepare", "dataset", "size")
    used = {config["tasks"][t]["dataset"] for t in [*config["targets"], *config["sources"]]
            if t in config["tasks"]}  # fmt: skip
    assert sorted(prepared) == sorted((d, str(config["image_size"])) for d in used)
    folders = [config["datasets"][d]["path"] for d, _ in prepared]
    assert len(folders) == len(set(folders)), "one download prepared under two names"
    trained = units(jobs, "pretrain", "arch", "trained")
    assert len(trained) == len(set(trained))
    assert set(trained) == {(a, t) for a in archs for t in config["sources"]
                            if t in config["tasks"]}  # fmt: skip
    extracted = units(jobs, "extract", "arch", "source", "target")
    assert len(extracted) == len(set(extracted))
    fe_runs = [
        (w["arch"], w["source"], w["target"])
        for r, w in jobs
        if r == "score" and w["method"].startswith("fe-")
    ]
    assert set(extracted) == set(fe_runs) and len(fe_runs) > len(extracted)


# the real ImageNet network every machine has (weights from a package): FE and FT on blood
SECOND_ARCHITECTURE = {
    "name": "efficientnet_lite0",
    "sources": ["none", "imagenet"],
    "targets": ["blood"],
}
TWO_ARCHITECTURES = {
    "sources": ["none", "natural", "imagenet"],
    "architectures": [{"name": "vgg16", "sources": ["none", "natural"]}, SECOND_ARCHITECTURE],
}


def with_lab_weights(data_root: Path) -> dict:
    """TWO_ARCHITECTURES with 'lab', a pretrained entry: EfficientNet-Lite0's ImageNet weights
    at 32 px saved by Keras as a lab's own file, so its runs must equal the 'imagenet' ones."""
    from medtransfer.lite0 import imagenet_lite0

    path = data_root / "lab.weights.h5"
    imagenet_lite0(32).save_weights(path)
    # one seed: what is tested here is that each source runs and equals another, not spread
    lite0 = {**SECOND_ARCHITECTURE, "sources": [*SECOND_ARCHITECTURE["sources"], "lab"],
             "seeds": [0]}  # fmt: skip
    return {
        "sources": [*TWO_ARCHITECTURES["sources"], "lab"],
        "architectures": [TWO_ARCHITECTURES["architectures"][0], lite0],
        "pretrained": {"lab": {"architecture": "efficientnet_lite0", "weights": str(path)}},
    }


@pytest.fixture(scope="module")
def two_architectures(small_grid, shared_data, tmp_path_factory) -> Path:
    """The small grid with EfficientNet-Lite0 from none, from ImageNet and from a pretrained
    weights file on the blood target added: only its jobs run."""
    workdir = tmp_path_factory.mktemp("two_architectures") / "grid"
    shutil.copytree(small_grid, workdir, symlinks=True)
    vgg_runs = sorted((workdir / "results/vgg16/runs").rglob("*.json"))
    stamps = {path: path.stat().st_mtime_ns for path in vgg_runs}
    config = write_config(workdir / "two.yaml", shared_data, **with_lab_weights(workdir))
    snakemake(workdir, config, "--cores", "2", timeout=900)
    assert {p: p.stat().st_mtime_ns for p in vgg_runs} == stamps, "a VGG16 run was redone"
    return workdir


def test_second_architecture_writes_its_own_runs(two_architectures):
    """ImageNet's EfficientNet-Lite0, offline: FE and FT from its package's weights."""
    runs = sorted((two_architectures / "results/efficientnet_lite0/runs").rglob("seed*.json"))
    # blood x (none, imagenet, lab) x (fe-svm, ft-svm) x 1 seed
    assert len(runs) == 6
    for path in runs:
        run = json.loads(path.read_text())
        assert run["architecture"] == "efficientnet_lite0" and run["target"] == "blood"
        assert run["feature_layer"] == "avg_pool" and run["classifier_converged"] is True
        assert 0.0 <= run["auc_macro"] <= 1.0
    weights = two_architectures / "results/efficientnet_lite0/models/imagenet/weights_32px.pth"
    assert weights.stat().st_size > 17_000_000  # the package's file, copied
    table = pd.read_csv(two_architectures / "results/efficientnet_lite0/table2.csv")
    assert set(table.target) == {"blood"} and "imagenet" in set(table.source)
    filters = two_architectures / "results/efficientnet_lite0/filters/imagenet/kernels.png"
    assert filters.is_file()


def test_a_pretrained_weights_file_runs_fe_and_ft_end_to_end(two_architectures):
    """'lab' holds ImageNet's weights in a Keras file: its FE and FT runs equal ImageNet's."""
    runs = two_architectures / "results/efficientnet_lite0/runs/blood"
    for method in ("fe-svm", "ft-svm"):
        for seed in ("seed0",):
            lab = json.loads((runs / f"lab/{method}/{seed}.json").read_text())
            imagenet = json.loads((runs / f"imagenet/{method}/{seed}.json").read_text())
            assert lab["source"] == "lab" and lab["architecture"] == "efficientnet_lite0"
            assert lab["test_scores"] == imagenet["test_scores"], (method, seed)
    table = pd.read_csv(two_architectures / "results/efficientnet_lite0/table2.csv")
    assert "lab" in set(table.source)


def test_cross_architecture_table_is_recomputed_from_the_runs(two_architectures):
    gains = pd.read_csv(two_architectures / "results/architectures.csv")
    assert set(zip(gains.architecture, gains.source, strict=True)) == {
        ("vgg16", "natural"),
        ("efficientnet_lite0", "imagenet"),
        ("efficientnet_lite0", "lab"),
    }

    def mean_auc(arch, target, source):
        files = (two_architectures / f"results/{arch}/runs/{target}/{source}/ft-svm").glob(
            "seed?.json"
        )
        return np.mean([json.loads(f.read_text())["auc_macro"] for f in files])

    for arch, source, targets in (
        ("vgg16", "natural", ["isic", "blood"]),
        ("efficientnet_lite0", "imagenet", ["blood"]),
    ):
        expected = np.mean([mean_auc(arch, t, source) - mean_auc(arch, t, "none")
                            for t in targets])  # fmt: skip
        row = gains[(gains.architecture == arch) & (gains.source == source)].iloc[0]
        assert row.ft_gain == pytest.approx(expected, abs=1e-6)
        assert row.n_targets == len(targets)
        markdown = (two_architectures / "results/architectures.md").read_text()
        line = next(x for x in markdown.splitlines() if x.startswith(f"| {arch} (32 px) |"))
        assert f" {round(expected, 3) + 0.0:+.3f} |" in line  # in the source's column
    assert "\\begin{tabular}" in (two_architectures / "results/architectures.tex").read_text()
    assert (two_architectures / "results/architectures.png").stat().st_size > 10_000
    # the grid's Table II is the first architecture's
    assert (two_architectures / "results/table2.csv").read_bytes() == (
        two_architectures / "results/vgg16/table2.csv"
    ).read_bytes()


def test_an_architecture_at_its_own_image_size(tmp_path, shared_data):
    """`image_size` in an architectures entry: that network's source training, features,
    fine-tuning and ImageNet weights at 64 px, the other network's at the grid's 32; the
    audit and the splits (of the images, not of a size) shared."""
    lite0 = {**SECOND_ARCHITECTURE, "sources": ["none", "natural", "imagenet"],
             "image_size": 64}  # fmt: skip
    architectures = [TWO_ARCHITECTURES["architectures"][0], lite0]
    config = write_config(tmp_path / "c.yaml", shared_data,
                          **{**TWO_ARCHITECTURES, "architectures": architectures})  # fmt: skip
    out = snakemake(tmp_path, config, "-n", "--cores", "2").stdout
    jobs = [block for block in re.split(r"\n(?=(?:local)?rule )", out) if "input:" in block]

    def inputs_of(rule: str, arch: str) -> str:
        return " ".join(b.split("output:")[0] for b in jobs
                        if b.startswith(f"rule {rule}:") and f"arch={arch}" in b)  # fmt: skip

    for rule in ("pretrain", "extract", "finetune"):
        assert "/64px/" in inputs_of(rule, "efficientnet_lite0"), rule
        assert "/32px/" not in inputs_of(rule, "efficientnet_lite0"), rule
        assert "/64px/" not in inputs_of(rule, "vgg16"), rule
    assert "results/efficientnet_lite0/models/imagenet/weights_64px.pth" in out
    assert "results/splits/blood/seed0.json" in inputs_of("finetune", "efficientnet_lite0")


def test_one_architecture_table_schedules_only_that_architecture(tmp_path, shared_data):
    config = write_config(tmp_path / "c.yaml", shared_data, **TWO_ARCHITECTURES)
    out = snakemake(
        tmp_path, config, "-n", "--cores", "2", "results/efficientnet_lite0/table2.csv"
    ).stdout
    assert "results/vgg16/" not in out and "arch=vgg16" not in out
    assert "results/efficientnet_lite0/runs/blood/imagenet/ft-svm/seed1.json" in out


def test_small_grid_says_why_it_has_no_tau(small_grid):
    """One transfer source (natural) per target: the tau table says so instead of NaN."""
    tau = (small_grid / "results/vgg16/transferability/tau.md").read_text()
    assert "nan" not in tau.lower()
    assert tau.count("1 source(s) with estimates and FT runs: a ranking needs at least 3") == 2 * 6
    cka = pd.read_csv(small_grid / "results/vgg16/probes/isic/cka.csv")
    assert set(zip(cka.source, cka.seed, strict=True)) == {(s, k) for s in ("none", "natural")
                                                          for k in (0, 1)}  # fmt: skip


def test_paper_page_job_counts_are_the_dry_runs(paper_dry_runs):
    """docs/paper.md's job counts are what a dry run plans today."""
    readme = (REPO / "docs" / "paper.md").read_text()
    rows = re.findall(r"^\| `config/(\w+)\.yaml` \|[^\n]*\| ([\d,]+) \|$", readme, re.M)
    assert {name for name, _ in rows} == {"fok2019", "patel2019", "pal2016"}
    for name, count in rows:
        assert sum(job_counts(paper_dry_runs[name]).values()) == int(count.replace(",", "")), name
