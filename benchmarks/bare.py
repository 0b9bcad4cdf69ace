"""The workflow against the bare computation: a finished grid's fine-tuning, extraction and
scoring redone as plain Keras and scikit-learn in this one process, and the grid's job
seconds per rule (Snakemake's benchmark files) divided by the bare seconds.

    python benchmarks/bare.py <workdir>            # a finished grid (e.g. the demo's folder)
    python benchmarks/bare.py <workdir> --limit 2  # two jobs per rule (a smoke run)

Bare means: the same networks, data, epochs (each run's `epochs_run`), seeds and classifier,
one thread as a job has, but no Snakemake, no per-job process start-up or imports, no
checkpoints, no CKA probes, no files written; `model.fit` on in-memory arrays with the
validation pass per epoch that early stopping needs. The ratio is what the workflow's
structure costs on top of the arithmetic; with `--limit` it compares the first jobs only.
Each job's start-up (its job seconds less its own work after the 'started' and 'imports'
phases of its log) is summed apart, and the ratio without it printed beside: the distance
that start-up alone makes, and the distance left inside the jobs.
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
runpy.run_path(str(REPO / "workflow" / "scripts" / "_checkout.py"))  # this checkout's package
sys.path.insert(0, str(REPO / "benchmarks"))
from grid import job_seconds, last_phases  # noqa: E402  (benchmarks/grid.py, found just above)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
RULES = ("finetune", "extract", "score")


def load_grid(workdir: Path):
    """The grid of the workdir's config.yaml, as the workflow plans it (every source kept:
    only those with files on disk are timed)."""
    from medtransfer import config as mtc
    from medtransfer.grid import Grid

    config = mtc.load_config(workdir / "config.yaml")
    mtc.apply_includes(config, REPO)  # as the Snakefile: from the checkout, not the workdir
    config.setdefault("data_root", "data")
    mtc.validate_schema(config, REPO / "workflow" / "schemas" / "config.schema.yaml")
    mtc.check_config(config)
    grids = mtc.architecture_grids(config)
    return Grid(config, {a: list(g["sources"]) for a, g in grids.items()}, config["data_root"])


def timed(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def target_data(grid, workdir: Path, arch: str, target: str):
    from medtransfer.data import load_prepared

    files = grid.arch_task_data(arch, target)
    return load_prepared(workdir / files["images"], workdir / files["meta"])


def source_of(grid, workdir: Path, arch: str, source: str, size: int, seed: int):
    from medtransfer.models import source_network

    params = grid.network_params(arch)
    path = grid.source_model(arch, source)
    return source_network(source, workdir / path if path else None, size, params["width"],
                          seed, arch)  # fmt: skip


def bare_finetune(grid, workdir: Path, run) -> float:
    """Build, train for the run's epochs with a validation pass each, predict features."""
    import keras

    from medtransfer.io import read_json
    from medtransfer.models import (
        feature_layer_name,
        predict_outputs,
        set_trainable,
        with_new_head,
    )
    from medtransfer.training import compile_for_training

    arch, settings = run.arch, grid.training_params("finetune", run.arch)
    images, meta = target_data(grid, workdir, arch, run.target)
    split = read_json(workdir / grid.split(run.target, run.seed))
    done = read_json(workdir / run.finetune_dir() / "training.json")
    labels = np.asarray(meta["labels"])
    x = {part: np.asarray(images[split[part]], dtype=np.float32) for part in ("train", "val")}
    y = {part: labels[split[part]] for part in ("train", "val")}
    weights = np.asarray(split["class_weights"], dtype=np.float32)[y["train"]]

    def work() -> None:
        keras.utils.set_random_seed(run.seed)
        source = source_of(grid, workdir, arch, run.source, images.shape[1], run.seed)
        model = with_new_head(source, len(meta["classes"]), arch=arch)
        set_trainable(model, run.method.variant, arch)
        compile_for_training(model, settings)
        model.fit(x["train"], y["train"], sample_weight=weights,
                  batch_size=settings["batch_size"], epochs=done["epochs_run"],
                  validation_data=(x["val"], y["val"]), verbose=0)  # fmt: skip
        layer = feature_layer_name(model, settings["feature_layer"], arch)
        network = keras.Model(model.input, [model.get_layer(layer).output, model.outputs[0]])
        predict_outputs(network, images)

    return timed(work)


def bare_extract(grid, workdir: Path, arch: str, target: str, source: str) -> float:
    from medtransfer.models import extract_model, feature_layer_name, predict_outputs

    images, _ = target_data(grid, workdir, arch, target)
    settings = grid.network_params(arch)

    def work() -> None:
        model = source_of(grid, workdir, arch, source, images.shape[1],
                          grid.config["pretrain_seed"])  # fmt: skip
        layer = feature_layer_name(model, settings["feature_layer"], arch)
        network, _ = extract_model(model, layer, arch, source)
        predict_outputs(network, images)

    return timed(work)


def bare_score(grid, workdir: Path, run) -> float:
    from medtransfer.classifiers import PROBABILISTIC, fit_and_score
    from medtransfer.io import read_json
    from medtransfer.metrics import all_metrics

    inputs = grid.score_inputs(run.arch, run.target, run.source, run.method.name, run.seed)
    meta = read_json(workdir / inputs["meta"])
    split = read_json(workdir / inputs["split"])
    labels, classes = np.asarray(meta["labels"]), meta["classes"]
    features = np.load(workdir / inputs["features"])
    settings, classifier = grid.config["classifiers"], run.method.classifier

    def work() -> None:
        scores = fit_and_score(classifier, features[split["train"]], labels[split["train"]],
                               features[split["test"]], len(classes), run.seed,
                               settings["svm_c"], 1, settings["class_weights"],
                               settings["svm_features"])  # fmt: skip
        all_metrics(labels[split["test"]], np.asarray(scores, dtype=np.float64), classes,
                    grid.config["tasks"][run.target]["ordinal"],
                    classifier in PROBABILISTIC)  # fmt: skip

    return timed(work)


def bare_jobs(grid, workdir: Path, limit: int | None) -> Iterator[tuple[str, float]]:
    """(rule, bare seconds) for each job of the three rules whose outputs are on disk."""
    runs = [r for r in grid.runs if (workdir / r.path()).is_file()]
    tuned = {r.finetune_dir(): r for r in runs if r.method.kind == "ft"}
    frozen = sorted({(r.arch, r.target, r.source) for r in runs if r.method.kind == "fe"})
    for rule, jobs in (
        ("finetune", [lambda r=r: bare_finetune(grid, workdir, r) for r in tuned.values()]),
        ("extract", [lambda k=k: bare_extract(grid, workdir, *k) for k in frozen]),
        ("score", [lambda r=r: bare_score(grid, workdir, r) for r in runs]),
    ):
        for job in jobs[:limit]:
            yield rule, job()


def job_work(workdir: Path, benchmark: str) -> float:
    """Seconds a job spent in its own code after its start-up: from the later of its
    'started' and 'imports' phases (medtransfer.jobs) to its end."""
    folder = workdir / "results" / "benchmarks"
    rule, *name = Path(benchmark).relative_to(folder).with_suffix("").parts
    log = workdir / "logs" / rule / Path(*name).with_suffix(".log")
    points = last_phases(log) if log.is_file() else None
    if not points or "started" not in points:
        raise SystemExit(f"{log}: no 'phases' line with 'started' (a grid run before it was "
                         "logged): rerun the grid to split its start-up off")  # fmt: skip
    return points["end"] - max(points["started"], points.get("imports", 0.0))


def workflow_seconds(workdir: Path, counts: dict[str, int]) -> pd.DataFrame:
    """Each rule's summed job seconds and, of them, its start-up (everything but the job's
    own work: process, interpreter, Snakemake's preamble, imports, exit), over its first
    `counts[rule]` jobs by start time when only some were redone bare."""
    jobs = job_seconds(workdir).sort_values("start")
    chosen = pd.concat([jobs[jobs.rule == rule].head(n) for rule, n in counts.items()])
    chosen["startup"] = chosen.s - [job_work(workdir, job) for job in chosen.job]
    return chosen.groupby("rule")[["s", "startup"]].sum()


def compare(workdir: Path, limit: int | None) -> pd.DataFrame:
    from medtransfer import runtime

    grid = load_grid(workdir)
    runtime.configure(1, 0, False, grid.config["keras_backend"])
    bare = pd.DataFrame(bare_jobs(grid, workdir, limit), columns=["rule", "bare_s"])
    per_rule = bare.groupby("rule", sort=False).bare_s.agg(["count", "sum"])
    ours = workflow_seconds(workdir, per_rule["count"].to_dict()).loc[per_rule.index]
    table = pd.DataFrame(
        {
            "rule": per_rule.index,
            "jobs": per_rule["count"].to_numpy(),
            "workflow_job_s": ours.s.to_numpy(),
            "startup_s": ours.startup.to_numpy(),
            "bare_s": per_rule["sum"].to_numpy(),
        }
    )
    sums = table[["jobs", "workflow_job_s", "startup_s", "bare_s"]].sum().to_dict()
    table = pd.concat([table, pd.DataFrame([{"rule": "total", **sums}])], ignore_index=True)
    table["ratio"] = table.workflow_job_s / table.bare_s
    # what the workflow would cost were each job's start-up gone: the distance left in-process
    table["ratio_less_startup"] = (table.workflow_job_s - table.startup_s) / table.bare_s
    return table


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("workdir", type=Path, help="a finished grid's working directory")
    parser.add_argument("--limit", type=int, help="redo only the first N jobs of each rule")
    args = parser.parse_args()
    table = compare(args.workdir.resolve(), args.limit)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
