"""Where a grid's time goes, read from a finished grid's files, and the same grid on each Keras
backend side by side.

- fixed cost per Keras rule: every Keras job logs `phases {...}` (medtransfer.jobs): seconds
  from its process start to 'imports' (interpreter, packages, backend), 'model' (built or
  loaded), the first epoch or first batch (tracing / compilation plus one step), and the end.
  Tracing is the first epoch less a later epoch's time (or the first predicted batch).
- summed job time per rule: Snakemake's `benchmark:` files.
- backends: a grid (the small one, tests/configs/small.yaml, unless another config is named)
  run once per backend from scratch:
  wall time, summed job time, per-rule fixed cost, and every (target, source, method)'s mean
  AUC with its seed-to-seed spread (max - min over seeds), so that a backend's numbers can be judged
  against the spread they must stay within.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
KERAS_RULES = ("pretrain", "extract", "finetune", "filters")
PHASE_LINE = "phases "  # medtransfer.jobs.PHASE_LINE (not imported: no package needed here)
WARM_NOTE = ", in a fork of the warm interpreter"  # medtransfer.jobs.WARM_NOTE


def last_phases(log: Path) -> dict | None:
    """The phases of a log's last completed job (a rerun appends to its log)."""
    found = None
    for line in log.read_text(errors="replace").splitlines():
        if PHASE_LINE in line and "{" in line:
            found = json.loads(line.split(PHASE_LINE, 1)[1])
    return found


def ran_warm(log: Path) -> bool:
    """Whether a log's last job ran in a fork of the warm interpreter (medtransfer.warm)."""
    starts = re.findall(r"rule \S+, wildcards .*", log.read_text(errors="replace"))
    return bool(starts) and WARM_NOTE in starts[-1]


def split_phases(points: dict) -> dict[str, float]:
    """start-up, build, trace and work seconds of one job from its phase points."""
    imports = points.get("imports", 0.0)
    model = points.get("model", imports)
    epochs = points.get("epoch_seconds", [])
    if "first_epoch" in points:
        steady = statistics.median(epochs[1:]) if len(epochs) > 1 else 0.0
        first = points["first_epoch"] - steady
    else:
        first = points.get("first_batch", model)
    end = points["end"]
    return {
        "startup": imports,
        "build": model - imports,
        "trace": max(0.0, first - model),
        "work": end - max(first, model),
        "total": end,
    }


def job_phases(workdir: Path) -> pd.DataFrame:
    rows = []
    for log in sorted((workdir / "logs").rglob("*.log")):
        rule = log.relative_to(workdir / "logs").parts[0]
        points = last_phases(log) if rule in KERAS_RULES else None
        if points:
            rows.append({"rule": rule, "job": str(log), "warm": ran_warm(log),
                         **split_phases(points)})  # fmt: skip
    return pd.DataFrame(rows, columns=["rule", "job", "warm", "startup", "build", "trace",
                                       "work", "total"])  # fmt: skip


def fixed_cost(workdir: Path) -> pd.DataFrame:
    """Per Keras rule: jobs, median seconds of each phase, and the fixed share of its time."""
    jobs = job_phases(workdir)
    table = jobs.groupby("rule")[["startup", "build", "trace", "work", "total"]].median()
    table.insert(0, "jobs", jobs.groupby("rule").size())
    table.insert(1, "warm", jobs.groupby("rule").warm.sum())
    sums = jobs.groupby("rule")[["startup", "build", "trace", "total"]].sum()
    table["fixed_share"] = (sums.startup + sums.build + sums.trace) / sums.total
    return table.reset_index()


def job_seconds(workdir: Path) -> pd.DataFrame:
    """Snakemake's benchmark seconds of every job, with its rule."""
    rows = []
    folder = workdir / "results" / "benchmarks"
    for tsv in sorted(folder.rglob("*.tsv")):
        seconds = float(pd.read_csv(tsv, sep="\t")["s"].iloc[-1])
        end = tsv.stat().st_mtime
        rule = tsv.relative_to(folder).parts[0]
        rows.append({"rule": rule, "job": str(tsv), "s": seconds, "start": end - seconds,
                     "end": end})  # fmt: skip
    return pd.DataFrame(rows, columns=["rule", "job", "s", "start", "end"])


def auc_summary(workdir: Path) -> pd.DataFrame:
    """Mean AUC and max deviation over seeds per (architecture, target, source, method)."""
    rows = []
    for path in sorted((workdir / "results").glob("*/runs/*/*/*/seed*.json")):
        if "_frac" in path.name:
            continue
        run = json.loads(path.read_text())
        rows.append({"architecture": run.get("architecture", "vgg16"), "target": run["target"],
                     "source": run["source"], "method": run["method"],
                     "auc": run["auc_macro"]})  # fmt: skip
    frame = pd.DataFrame(rows)
    keys = ["architecture", "target", "source", "method"]
    grouped = frame.groupby(keys)["auc"]
    out = grouped.mean().rename("mean").to_frame()
    out["max_deviation"] = grouped.apply(lambda a: (a - a.mean()).abs().max())
    out["range"] = grouped.max() - grouped.min()
    return out.reset_index()


SMALL_GRID = REPO / "tests" / "configs" / "small.yaml"


def run_grid(config_file: Path, backend: str, data: Path, workdir: Path, cores: int) -> float:
    """A grid from scratch on one backend; its wall time in seconds."""
    config = yaml.safe_load(config_file.read_text())
    config.update(data_root=str(data), keras_backend=backend)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d",
               str(workdir), "--configfile", str(workdir / "config.yaml"), "--cores",
               str(cores)]  # fmt: skip
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{backend}: {config_file.name} failed:\n{result.stderr[-3000:]}")
    return time.monotonic() - started


def compare_backends(
    backends: list[str],
    data: Path,
    cores: int,
    keep: Path | None,
    config_file: Path = SMALL_GRID,
) -> str:
    """The side-by-side report of one grid on each backend, as text."""
    lines, aucs = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        root = keep or Path(tmp)
        summary = []
        for backend in backends:
            workdir = root / backend
            wall = run_grid(config_file, backend, data, workdir, cores)
            jobs = job_seconds(workdir)
            costs = fixed_cost(workdir).set_index("rule")
            keras_jobs = jobs[jobs.rule.isin(KERAS_RULES)]
            summary.append({"backend": backend, "wall_s": wall, "job_s": jobs.s.sum(),
                            "keras_job_s": keras_jobs.s.sum(), "jobs": len(jobs)})  # fmt: skip
            lines.append(f"fixed cost per Keras rule, {backend} (median s per job):")
            lines.append(costs.round(2).to_string())
            lines.append("")
            aucs[backend] = auc_summary(workdir).set_index(
                ["architecture", "target", "source", "method"]
            )
    lines.insert(0, pd.DataFrame(summary).round(1).to_string(index=False) + "\n")
    lines.append(auc_table(aucs))
    return "\n".join(lines)


def auc_table(aucs: dict[str, pd.DataFrame]) -> str:
    """Mean AUC per backend, its seed-to-seed spread (the range of the seeds' AUCs), and
    whether each backend's mean lies within the larger of the two spreads of the reference
    (first) backend's: a backend's other random streams and numerics should move a mean no
    more than another seed does."""
    names = list(aucs)
    reference = aucs[names[0]]
    table = pd.DataFrame(index=reference.index)
    for name in names:
        table[f"{name} mean"] = aucs[name]["mean"]
        table[f"{name} spread"] = aucs[name]["range"]
    for name in names[1:]:
        gap = (aucs[name]["mean"] - reference["mean"]).abs()
        spread = pd.concat([aucs[name]["range"], reference["range"]], axis=1).max(axis=1)
        table[f"|{name} - {names[0]}|"] = gap
        table[f"{name} within spread"] = gap <= spread
    summary = ", ".join(
        f"{name}: {int(table[f'{name} within spread'].sum())} of {len(table)} within"
        for name in names[1:]
    )
    return (
        "AUC per (target, source, method) over seeds (spread: max - min over seeds):\n"
        + table.round(4).to_string()
        + f"\n{summary}"
    )
