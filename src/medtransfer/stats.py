"""Statistics across seeds: is FT better than FE, and is a source better than No transfer?

A comparison pairs the runs of two methods by seed (they share the seed's test images). Its
interval is a hierarchical bootstrap: each draw resamples the seeds with replacement, then,
within each drawn seed, its test images (the same images for both methods), and averages the
AUC differences. Resampling the seeds is what counts the variation between trained networks;
resampling only the test images, with the networks held fixed, ignores it and overstates
certainty (per-seed differences +0.072, -0.020, +0.061 are not evidence of a gain).

The p-value is the bootstrap's two-sided one (how often a draw lands on the other side of
zero, doubled); with fewer than two seeds there is no seed variation to count and no p-value.
The p-values of all comparisons in one table are adjusted together, by Holm's step-down
method (family-wise error rate) or Benjamini-Hochberg (false discovery rate), and a cell is
marked better or worse only when its adjusted p-value is below alpha. The paired t-test over
seeds is reported beside it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import ttest_rel

from .config import NO_SOURCE
from .metrics import macro_auc_batch
from .runs import Run, is_no_transfer, no_transfer_key

N_IMAGE_DRAWS = 2000  # test-image resamples per seed
N_DRAWS = 10000  # hierarchical draws: a p-value can go down to 2 / 10001
BETTER, WORSE, NOT_MARKED = 1, -1, 0


def image_draws(n: int, seed: int, n_draws: int = N_IMAGE_DRAWS) -> np.ndarray:
    """Test-image resamples of one seed; every method scored on that seed gets the same ones."""
    return np.random.default_rng(seed).integers(0, n, size=(n_draws, n))


class AucDraws:
    """Macro AUC of each run on each of its seed's image resamples, computed once per run."""

    def __init__(self, n_draws: int = N_IMAGE_DRAWS):
        self.n_draws = n_draws
        self._cache: dict[int, np.ndarray] = {}

    def __call__(self, run: Run) -> np.ndarray:
        key = id(run)
        if key not in self._cache:
            labels = np.asarray(run.test_labels)
            scores = np.asarray(run.test_scores, dtype=np.float64)
            draws = image_draws(len(labels), run.seed, self.n_draws)
            values = np.empty(len(draws))
            for start in range(0, len(draws), 250):  # bounded memory on large test sets
                block = draws[start : start + 250]
                values[start : start + 250] = macro_auc_batch(labels[block], scores[block])
            self._cache[key] = values
        return self._cache[key]


def hierarchical_bootstrap(
    per_seed: list[np.ndarray], n_draws: int = N_DRAWS, seed: int = 0
) -> np.ndarray:
    """Draws of the mean over seeds: seeds resampled with replacement, then for each drawn
    seed one of its test-image resamples (`per_seed[s]`, a row of values per resample)."""
    table = np.stack(per_seed)  # (n_seeds, n_image_draws)
    rng = np.random.default_rng(seed)
    n_seeds, n_image = table.shape
    seeds = rng.integers(0, n_seeds, size=(n_draws, n_seeds))
    images = rng.integers(0, n_image, size=(n_draws, n_seeds))
    values = np.nanmean(table[seeds, images], axis=1)
    return values[np.isfinite(values)]


def two_sided_p(values: np.ndarray) -> float:
    """Twice the share of bootstrap draws on the far side of zero (+1 smoothing: never 0)."""
    n = len(values)
    below = (np.sum(values <= 0) + 1) / (n + 1)
    above = (np.sum(values >= 0) + 1) / (n + 1)
    return float(min(1.0, 2 * min(below, above)))


def paired_difference(
    runs_a: list[Run], runs_b: list[Run], draws: AucDraws | None = None
) -> dict[str, Any]:
    """A minus B over the seeds present in both: mean, hierarchical-bootstrap 95 % interval and
    p-value, paired t-test p-value, and the per-seed differences."""
    draws = draws or AucDraws()
    by_seed_b = {r.seed: r for r in runs_b}
    pairs = sorted(
        ((a, by_seed_b[a.seed]) for a in runs_a if a.seed in by_seed_b),
        key=lambda pair: pair[0].seed,
    )
    if not pairs:
        return {}
    for a, b in pairs:
        if a.test_labels != b.test_labels:
            raise ValueError(
                f"runs {a.file or a.method} and {b.file or b.method} of seed {a.seed} were "
                "scored on different test images; they cannot be paired"
            )
    differences = [float(a.auc_macro) - float(b.auc_macro) for a, b in pairs]
    values = hierarchical_bootstrap([draws(a) - draws(b) for a, b in pairs])
    low, high = np.percentile(values, [2.5, 97.5])
    several = len(pairs) > 1
    return {
        "mean_difference": float(np.mean(differences)),
        "ci_low": float(low),
        "ci_high": float(high),
        "p_bootstrap": two_sided_p(values) if several else float("nan"),
        "p_paired_t": (
            float(
                ttest_rel([a.auc_macro for a, _ in pairs], [b.auc_macro for _, b in pairs]).pvalue
            )
            if several
            else float("nan")
        ),
        "n_seeds": len(pairs),
        "seed_differences": ";".join(f"{d:+.4f}" for d in differences),
    }


def _family(p_values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The p-values as floats, an all-NaN result to fill, and the positions of the finite
    ones (the family) from smallest to largest p."""
    p = np.asarray(p_values, dtype=float)
    present = np.flatnonzero(np.isfinite(p))
    return p, np.full(len(p), np.nan), present[np.argsort(p[present], kind="stable")]


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment: the k-th smallest of m p-values times (m - k + 1), made
    monotone, capped at 1. NaN p-values are not part of the family and stay NaN."""
    p, adjusted, order = _family(p_values)
    m = len(order)
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * p[i]))
        adjusted[i] = running
    return adjusted


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg: the k-th smallest of m p-values times m / k, made monotone from the
    largest down, capped at 1. NaN p-values stay NaN."""
    p, adjusted, order = _family(p_values)
    m = len(order)
    running = 1.0
    for k in range(m - 1, -1, -1):
        i = order[k]
        running = min(running, m * p[i] / (k + 1))
        adjusted[i] = running
    return adjusted


CORRECTIONS = {"holm": holm, "bh": benjamini_hochberg}
CORRECTION_NAMES = {"holm": "Holm", "bh": "Benjamini-Hochberg"}


def mark_comparisons(table: pd.DataFrame, alpha: float, correction: str) -> pd.DataFrame:
    """Adjust the table's p-values as one family; mark +1 / -1 where the adjusted p < alpha."""
    table = table.copy()
    if not len(table):
        return table.assign(p_adjusted=[], mark=[])
    table["p_adjusted"] = CORRECTIONS[correction](table["p_bootstrap"].to_numpy())
    significant = table["p_adjusted"] < alpha
    table["mark"] = np.where(significant, np.sign(table["mean_difference"]), NOT_MARKED).astype(int)
    table["family_size"] = int(np.isfinite(table["p_bootstrap"]).sum())
    table["correction"] = correction
    return table


def comparisons(
    runs: dict[tuple[str, str, str], list[Run]],
    fe: str,
    ft: str,
    alpha: float = 0.05,
    correction: str = "holm",
    draws: AucDraws | None = None,
) -> pd.DataFrame:
    """FT - FE per (target, source), and every (source, method) - No transfer per target;
    all of them one family for the multiple-comparison adjustment."""
    draws = draws or AucDraws()
    rows = []
    targets = sorted({key[0] for key in runs})
    for target in targets:
        baseline = runs.get(no_transfer_key(target, ft), [])
        for (t, source, method), mine in sorted(runs.items()):
            if t != target:
                continue
            if method == ft and source != NO_SOURCE and (t, source, fe) in runs:
                rows.append(
                    {
                        "target": t,
                        "source": source,
                        "comparison": f"{ft} - {fe}",
                        **paired_difference(mine, runs[(t, source, fe)], draws),
                    }
                )
            if baseline and not is_no_transfer(source, method, ft):
                rows.append(
                    {
                        "target": t,
                        "source": source,
                        "comparison": f"{method} - no transfer",
                        **paired_difference(mine, baseline, draws),
                    }
                )
    table = pd.DataFrame(rows)
    if len(table) and "p_bootstrap" not in table:
        table["p_bootstrap"] = np.nan
    return mark_comparisons(table, alpha, correction)


def run_intervals(
    runs: dict[tuple[str, str, str], list[Run]], draws: AucDraws | None = None
) -> pd.DataFrame:
    """Per run: a bootstrap 95 % interval of its test-set AUC (test images resampled; one
    trained network, so this is the test set's share of the uncertainty only)."""
    draws = draws or AucDraws()
    rows = []
    for (target, source, method), group in sorted(runs.items()):
        for run in group:
            values = draws(run)
            low, high = np.nanpercentile(values, [2.5, 97.5])
            rows.append(
                {
                    "target": target,
                    "source": source,
                    "method": method,
                    "seed": run.seed,
                    "auc": run.auc_macro,
                    "ci_low": float(low),
                    "ci_high": float(high),
                    "n_test": len(run.test_labels),
                }
            )
    return pd.DataFrame(rows)
