"""The adaptive grid: which sources a target's fine-tuning runs on each seed (the top-k by
that seed's estimates), and the report of what it left out and the compute that saved."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .io import read_csv


def choose_sources(
    estimates: pd.DataFrame, estimator: str, top_k: int, candidates: list[str], seed: int
) -> dict[str, Any]:
    """The top_k candidate sources of one target for one seed, by that seed's estimates
    (each computed on the seed's train+val rows: its test images never inform the choice;
    a mean over seeds would read them, since they lie in other seeds' train+val rows).
    Ties go to the earlier source in the config (a stable choice)."""
    chosen = estimates[
        (estimates.estimator == estimator)
        & estimates.source.isin(candidates)
        & (estimates.seed == seed)
    ]
    means = chosen.groupby("source")["score"].mean()
    missing = [s for s in candidates if s not in means.index or not np.isfinite(means[s])]
    if missing:
        raise ValueError(
            f"adaptive.estimator: {estimator} has no estimate on seed {seed} for source(s) "
            f"{', '.join(missing)} (LEEP and NCE need a source with classes of its own)"
        )
    order = sorted(candidates, key=lambda s: (-means[s], candidates.index(s)))
    return {
        "seed": seed,
        "estimator": estimator,
        "top_k": top_k,
        "scores": {s: float(means[s]) for s in candidates},
        "selected": order[:top_k],
        "left_out": order[top_k:],
    }


def benchmark_seconds(path: Path) -> float | None:
    """Wall seconds of a job from its Snakemake `benchmark:` file, if an earlier run left
    one."""
    if not path.exists():
        return None
    frame = read_csv(path, sep="\t")
    return float(frame["s"].iloc[0]) if "s" in frame and len(frame) else None


def adaptive_table(
    selections: dict[tuple[str, int], dict[str, Any]], skipped_jobs: dict[str, list[Path]]
) -> pd.DataFrame:
    """A row per (target, seed, left-out source): its estimate, the fine-tuning jobs not run
    and the seconds they took in an equivalent full run (blank where none has been run)."""
    rows = []
    for (target, seed), choice in sorted(selections.items()):
        for source in choice["left_out"]:
            jobs = skipped_jobs.get(f"{target}/{source}/{seed}", [])
            seconds = [benchmark_seconds(p) for p in jobs]
            known = [s for s in seconds if s is not None]
            rows.append(
                {
                    "target": target,
                    "seed": seed,
                    "source": source,
                    "estimator": choice["estimator"],
                    "estimate": choice["scores"][source],
                    "rank": len(choice["selected"]) + choice["left_out"].index(source) + 1,
                    "selected": ";".join(choice["selected"]),
                    "finetune_jobs_saved": len(jobs),
                    "seconds_saved": sum(known) if len(known) == len(jobs) and jobs else math.nan,
                }
            )
    return pd.DataFrame(rows)


def adaptive_markdown(table: pd.DataFrame, n_jobs_full: int) -> str:
    saved = int(table.finetune_jobs_saved.sum()) if len(table) else 0
    seconds = table.seconds_saved.sum(min_count=len(table)) if len(table) else math.nan
    lines = [
        f"Fine-tuning jobs left out: {saved} of {n_jobs_full} "
        + (
            f"({seconds:.0f} s of job time in an equivalent full run)."
            if np.isfinite(seconds)
            else "(no equivalent full run's benchmark files: counted in jobs)."
        ),
        "",
        "| Target | Seed | Left out | Estimate | Rank | Fine-tuned instead | Jobs saved "
        "| Seconds |",
        "|---|:---:|---|:---:|:---:|---|:---:|:---:|",
    ]
    for row in table.itertuples():
        secs = f"{row.seconds_saved:.0f}" if np.isfinite(row.seconds_saved) else ""
        lines.append(
            f"| {row.target} | {row.seed} | {row.source} | {row.estimate:.6g} | {row.rank} | "
            f"{row.selected} | {row.finetune_jobs_saved} | {secs} |"
        )
    return "\n".join(lines) + "\n"
