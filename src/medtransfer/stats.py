"""Statistics across seeds: is FT better than FE, and is a source better than No transfer?

Per run, a bootstrap 95 % confidence interval of the test-set macro AUC (test images drawn
with replacement). Per comparison (FT - FE of a source; each method - No transfer), runs are
paired by seed, which share the test images of their split: each bootstrap draw resamples
every seed's test set once, computes both AUCs on the same draw and averages the difference
over seeds. The interval is the 2.5-97.5 % percentile of those averages; the paired t-test
over seeds is given beside it. Three seeds give a t-test very little power: raise `seeds`
in the config for claims that rest on it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata, ttest_rel

from .config import NO_SOURCE
from .io import read_json

N_BOOTSTRAP = 1000


def macro_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Macro one-vs-rest AUC from ranks (Mann-Whitney), NaN where a class is absent."""
    aucs = []
    for k in range(scores.shape[1]):
        positive = labels == k
        n_pos, n_neg = positive.sum(), (~positive).sum()
        if n_pos == 0 or n_neg == 0:
            return float("nan")
        ranks = rankdata(scores[:, k])
        aucs.append((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    return float(np.mean(aucs))


def bootstrap_draws(n: int, seed: int, n_draws: int = N_BOOTSTRAP) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(n_draws, n))


def run_interval(run: dict[str, Any], n_draws: int = N_BOOTSTRAP) -> tuple[float, float]:
    labels, scores = np.asarray(run["test_labels"]), np.asarray(run["test_scores"])
    draws = bootstrap_draws(len(labels), run["seed"], n_draws)
    values = np.array([macro_auc(labels[d], scores[d]) for d in draws])
    values = values[np.isfinite(values)]
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def paired_difference(
    runs_a: list[dict], runs_b: list[dict], n_draws: int = N_BOOTSTRAP
) -> dict[str, float]:
    """A minus B over seeds present in both: mean, bootstrap CI, paired t-test p-value."""
    by_seed_b = {r["seed"]: r for r in runs_b}
    pairs = [(a, by_seed_b[a["seed"]]) for a in runs_a if a["seed"] in by_seed_b]
    if not pairs:
        return {}
    diffs = np.zeros(n_draws)
    for a, b in pairs:
        if a["test_labels"] != b["test_labels"]:
            raise ValueError(
                f"runs {a['method']} and {b['method']} of seed {a['seed']} were "
                "scored on different test images; they cannot be paired"
            )
        labels = np.asarray(a["test_labels"])
        sa, sb = np.asarray(a["test_scores"]), np.asarray(b["test_scores"])
        for i, draw in enumerate(bootstrap_draws(len(labels), a["seed"], n_draws)):
            diffs[i] += macro_auc(labels[draw], sa[draw]) - macro_auc(labels[draw], sb[draw])
    diffs /= len(pairs)
    diffs = diffs[np.isfinite(diffs)]
    auc_a = [a["auc_macro"] for a, _ in pairs]
    auc_b = [b["auc_macro"] for _, b in pairs]
    p_value = float(ttest_rel(auc_a, auc_b).pvalue) if len(pairs) > 1 else float("nan")
    low, high = np.percentile(diffs, [2.5, 97.5])
    return {
        "mean_difference": float(np.mean(np.subtract(auc_a, auc_b))),
        "ci_low": float(low),
        "ci_high": float(high),
        "excludes_zero": bool(low > 0 or high < 0),
        "p_paired_t": p_value,
        "n_seeds": len(pairs),
    }


def comparisons(runs: dict[tuple[str, str, str], list[dict]], fe: str, ft: str) -> pd.DataFrame:
    """FT - FE per (target, source), and every (source, method) - No transfer per target."""
    rows = []
    targets = sorted({key[0] for key in runs})
    for target in targets:
        baseline = runs.get((target, NO_SOURCE, ft), [])
        for (t, source, method), mine in sorted(runs.items()):
            if t != target:
                continue
            if method == ft and source != NO_SOURCE and (t, source, fe) in runs:
                rows.append(
                    {
                        "target": t,
                        "source": source,
                        "comparison": f"{ft} - {fe}",
                        **paired_difference(mine, runs[(t, source, fe)]),
                    }
                )
            if baseline and (source, method) != (NO_SOURCE, ft):
                rows.append(
                    {
                        "target": t,
                        "source": source,
                        "comparison": f"{method} - no transfer",
                        **paired_difference(mine, baseline),
                    }
                )
    return pd.DataFrame(rows)


def load_runs(paths: list[str]) -> dict[tuple[str, str, str], list[dict]]:
    grouped: dict[tuple[str, str, str], list[dict]] = {}
    for path in paths:
        run = read_json(path)
        grouped.setdefault((run["target"], run["source"], run["method"]), []).append(run)
    return grouped


def run_intervals(runs: dict[tuple[str, str, str], list[dict]]) -> pd.DataFrame:
    rows = []
    for (target, source, method), group in sorted(runs.items()):
        for run in sorted(group, key=lambda r: r["seed"]):
            low, high = run_interval(run)
            rows.append(
                {
                    "target": target,
                    "source": source,
                    "method": method,
                    "seed": run["seed"],
                    "auc": run["auc_macro"],
                    "ci_low": low,
                    "ci_high": high,
                    "n_test": len(run["test_labels"]),
                }
            )
    return pd.DataFrame(rows)
