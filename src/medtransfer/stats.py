"""Statistics across seeds: is FT better than FE, and is a source better than No transfer?

The seed is the unit of replication: each seed draws its own split and trains its own
networks, and a comparison pairs the runs of two methods by seed (they share the seed's test
images). Its test is the corrected resampled t-test of Nadeau & Bengio (2003, "Inference for
the generalization error", Machine Learning 52) on the per-seed AUC differences d_1..d_J:

    t = mean(d) / sqrt((1/J + n_test/n_train) * var(d)),   J - 1 degrees of freedom.

The plain paired t-test divides var(d) by J as if the J differences were independent; the
seeds' random splits overlap (two 70 % training sets share about half of the images), so the
differences are positively correlated and the plain test rejects too often. The extra
n_test/n_train is Nadeau & Bengio's bound on that correlation. `benchmarks/calibration.py`
shows the rejection rates under the null and under true differences for 3, 5 and 10 seeds,
for this test, the plain t-test and the hierarchical bootstrap the marks used before (which
rejected 21 % of null comparisons at 3 seeds: with 3 seeds whose differences share a sign,
every resample shares it). The interval beside it is the same test's 95 % interval.

The hierarchical bootstrap (seeds resampled, then each drawn seed's test images) is kept as
a description of spread only (`spread_low`, `spread_high`): it is not a test.

The p-values of all comparisons in one table are adjusted together, by Holm's step-down
method (family-wise error rate) or Benjamini-Hochberg (false discovery rate), and a cell is
marked better or worse only when its adjusted p-value is below alpha. With fewer than two
seeds there is no p-value and no mark. `detectable_difference` is the smallest true
difference this test finds with 80 % power at the comparison's own seed-to-seed spread
(before the adjustment): what its seeds can and cannot show.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.stats import nct, ttest_1samp
from scipy.stats import t as student_t

from .config import NO_SOURCE
from .metrics import macro_auc_batch
from .runs import RunRecord, is_no_transfer, no_transfer_key

N_IMAGE_DRAWS = 2000  # test-image resamples per seed
N_DRAWS = 10000  # hierarchical draws of the spread interval
BETTER, WORSE, NOT_MARKED = 1, -1, 0
TEST_P = "p_corrected_t"  # the p-value behind the marks
TEST_NAME = "corrected resampled t-test (Nadeau & Bengio 2003)"


def image_draws(n: int, seed: int, n_draws: int = N_IMAGE_DRAWS) -> np.ndarray:
    """Test-image resamples of one seed; every method scored on that seed gets the same ones."""
    return np.random.default_rng(seed).integers(0, n, size=(n_draws, n))


class AucDraws:
    """Macro AUC of each run on each of its seed's image resamples, computed once per run."""

    def __init__(self, n_draws: int = N_IMAGE_DRAWS):
        self.n_draws = n_draws
        self._cache: dict[int, np.ndarray] = {}

    def __call__(self, run: RunRecord) -> np.ndarray:
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


def corrected_t_test(differences: np.ndarray, test_train_ratio: float) -> dict[str, float]:
    """Nadeau & Bengio's corrected resampled t-test of mean(differences) = 0: the mean, its
    corrected standard error, the two-sided p and the 95 % interval. NaN p with one value."""
    d = np.asarray(differences, dtype=float)
    n = len(d)
    mean = float(np.mean(d)) if n else float("nan")
    if n < 2:
        return {"mean": mean, "se": np.nan, "p": np.nan, "low": np.nan, "high": np.nan}
    se = float(np.sqrt((1 / n + test_train_ratio) * np.var(d, ddof=1)))
    if se == 0:  # identical differences: no spread to weigh them against
        p = 1.0 if mean == 0 else 0.0
        return {"mean": mean, "se": 0.0, "p": p, "low": mean, "high": mean}
    p = float(2 * student_t.sf(abs(mean) / se, n - 1))
    half = float(student_t.ppf(0.975, n - 1) * se)
    return {"mean": mean, "se": se, "p": p, "low": mean - half, "high": mean + half}


def detectable_difference(
    seed_sd: float, n_seeds: int, test_train_ratio: float, alpha: float = 0.05, power: float = 0.8
) -> float:
    """The smallest true difference the corrected t-test finds with `power` at level `alpha`
    (two-sided, before any adjustment), given the seed-to-seed sd of the differences, were
    the seeds independent (correlated seeds leave less power: a lower bound on the
    difference a table can show)."""
    if n_seeds < 2 or not np.isfinite(seed_sd):
        return float("nan")
    if seed_sd == 0:
        return 0.0
    df = n_seeds - 1
    # the test rejects where |mean| / (s * sqrt(1/J + r)) > t_crit, i.e. where the plain t
    # statistic mean / (s / sqrt(J)) exceeds t_crit * sqrt(1 + J r); that statistic is
    # noncentral t with noncentrality delta / (sd / sqrt(J)) when the seeds are independent
    critical = student_t.ppf(1 - alpha / 2, df) * np.sqrt(1 + n_seeds * test_train_ratio)
    se = seed_sd / np.sqrt(n_seeds)

    def shortfall(noncentral: float) -> float:
        # scipy's far tail turns NaN at large noncentrality, where it is zero
        far = np.nan_to_num(nct.cdf(-critical, df, noncentral))
        return float(np.nan_to_num(nct.sf(critical, df, noncentral), nan=1.0) + far - power)

    # in units of the standard error: large enough for power > 0.999 from 2 seeds on
    return float(brentq(shortfall, 0.0, 400.0) * se)


def split_ratio(run: RunRecord) -> float:
    """n_test / n_train of a run's split: Nadeau & Bengio's correction for overlapping splits."""
    sizes = run.sizes
    if not sizes.get("train") or "test" not in sizes:
        raise ValueError(
            f"run {run.file or run.label}: its sizes {sizes} name no train and test count; "
            "score the run again"
        )
    return sizes["test"] / sizes["train"]


def paired_difference(
    runs_a: list[RunRecord],
    runs_b: list[RunRecord],
    draws: AucDraws | None = None,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """A minus B over the seeds present in both: mean, the corrected t-test's p and 95 %
    interval, the plain paired t-test's p, the hierarchical bootstrap's spread, the smallest
    difference detectable at these seeds, and the per-seed differences."""
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
    differences = np.array([float(a.auc_macro) - float(b.auc_macro) for a, b in pairs])
    ratio = float(np.mean([split_ratio(a) for a, _ in pairs]))
    test = corrected_t_test(differences, ratio)
    spread = hierarchical_bootstrap([draws(a) - draws(b) for a, b in pairs])
    several = len(pairs) > 1
    seed_sd = float(np.std(differences, ddof=1)) if several else float("nan")
    return {
        "mean_difference": test["mean"],
        "ci_low": test["low"],
        "ci_high": test["high"],
        "p_corrected_t": test["p"],
        "p_paired_t": float(ttest_1samp(differences, 0.0).pvalue) if several else float("nan"),
        "seed_sd": seed_sd,
        "detectable_difference": detectable_difference(seed_sd, len(pairs), ratio, alpha),
        "test_train_ratio": ratio,
        "spread_low": float(np.percentile(spread, 2.5)),
        "spread_high": float(np.percentile(spread, 97.5)),
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
    table["p_adjusted"] = CORRECTIONS[correction](table[TEST_P].to_numpy())
    significant = table["p_adjusted"] < alpha
    table["mark"] = np.where(significant, np.sign(table["mean_difference"]), NOT_MARKED).astype(int)
    table["family_size"] = int(np.isfinite(table[TEST_P]).sum())
    table["test"] = TEST_NAME
    table["correction"] = correction
    return table


def comparisons(
    runs: dict[tuple[str, str, str], list[RunRecord]],
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
                        **paired_difference(mine, runs[(t, source, fe)], draws, alpha),
                    }
                )
            if baseline and not is_no_transfer(source, method, ft):
                rows.append(
                    {
                        "target": t,
                        "source": source,
                        "comparison": f"{method} - no transfer",
                        **paired_difference(mine, baseline, draws, alpha),
                    }
                )
    table = pd.DataFrame(rows)
    if len(table) and TEST_P not in table:
        table[TEST_P] = np.nan
    return mark_comparisons(table, alpha, correction)


def run_intervals(
    runs: dict[tuple[str, str, str], list[RunRecord]], draws: AucDraws | None = None
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
