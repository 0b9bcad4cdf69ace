"""The statistics behind Table II's marks, on small hand-made runs (no Snakemake)."""

import numpy as np
import pytest

from medtransfer.reporting import layout, summarise
from medtransfer.runs import RunRecord, group_runs, runs_frame
from medtransfer.stats import (
    benjamini_hochberg,
    comparisons,
    corrected_t_test,
    detectable_difference,
    holm,
    paired_difference,
)

from .conftest import REPO

N_PER_CLASS = 60
LABELS = [0] * N_PER_CLASS + [1] * N_PER_CLASS


def auc(scores):
    pos, neg = scores[N_PER_CLASS:], scores[:N_PER_CLASS]
    return float(np.mean(pos[:, None] > neg[None, :]))


def scores_with_auc(target: float, noise: np.ndarray) -> np.ndarray:
    """Binary scores over LABELS whose AUC is within one pair of `target`: a shift of the
    positives over fixed noise, found by bisection (the AUC grows with the shift)."""
    low, high = -5.0, 5.0
    for _ in range(60):
        shift = (low + high) / 2
        scores = noise + shift * np.array(LABELS)
        low, high = (shift, high) if auc(scores) < target else (low, shift)
    return noise + high * np.array(LABELS)


def run(method, seed, auc_value, source="natural"):
    noise = np.random.default_rng([seed, hash(method) % 1000]).normal(size=len(LABELS))
    margin = scores_with_auc(auc_value, noise)
    return RunRecord(
        target="isic",
        source=source,
        method=method,
        seed=seed,
        classes=["benign", "malignant"],
        auc_macro=auc(margin),
        auc_per_class={},
        accuracy=0.0,
        kappa=None,
        kappa_quadratic=None,
        f1_per_class={},
        f1_micro=0.0,
        f1_macro=0.0,
        confusion_matrix=[],
        sizes={"train": 4 * len(LABELS), "val": 0, "test": len(LABELS)},
        test_labels=LABELS,
        test_scores=np.column_stack([-margin, margin]).tolist(),
        file=f"{source}/{method}/seed{seed}.json",
    )


def grid(differences, base=0.70):
    """Runs of fe-svm (the baseline's AUC) and ft-svm (base + difference) per seed."""
    ft = [run("ft-svm", s, base + d) for s, d in enumerate(differences)]
    fe = [run("fe-svm", s, base) for s in range(len(differences))]
    return ft, fe


def test_three_seeds_that_disagree_get_no_mark():
    ft, fe = grid([0.072, -0.020, 0.061])
    result = paired_difference(ft, fe)
    seeds = [float(d) for d in result["seed_differences"].split(";")]
    assert seeds == pytest.approx([0.072, -0.020, 0.061], abs=0.002)
    assert result["ci_low"] < 0 < result["ci_high"]
    assert result["p_paired_t"] == pytest.approx(0.32, abs=0.02)
    # Nadeau & Bengio inflate the variance by (1/3 + 1/4) / (1/3): a larger p than plain t's
    assert result["p_corrected_t"] > result["p_paired_t"]
    assert result["spread_low"] < result["spread_high"]


def test_corrected_t_test_against_a_hand_computation():
    d = np.array([0.01, 0.03, 0.002])
    result = corrected_t_test(d, 0.25)
    se = np.sqrt((1 / 3 + 0.25) * np.var(d, ddof=1))
    assert result["se"] == pytest.approx(se)
    # t = 0.014 / se on 2 degrees of freedom; scipy's t distribution by another route
    t = d.mean() / se
    assert result["p"] == pytest.approx(1 - (t / np.sqrt(2 + t**2)), rel=1e-9)
    # the example: the bootstrap gave 0.009 here, the plain t-test 0.24
    assert result["p"] > 0.3
    assert np.isnan(corrected_t_test(d[:1], 0.25)["p"])


def test_detectable_difference_has_the_power_it_claims():
    """Simulate the corrected test at the returned difference: it rejects ~80 % of the time."""
    rng = np.random.default_rng(0)
    delta = detectable_difference(0.02, 5, 0.25)
    d = delta + rng.normal(0, 0.02, (4000, 5))
    p = [corrected_t_test(row, 0.25)["p"] for row in d]
    assert np.mean(np.array(p) < 0.05) == pytest.approx(0.8, abs=0.025)
    assert detectable_difference(0.02, 10, 0.25) < delta  # more seeds, smaller differences


@pytest.mark.parametrize("world", ["independent", "overlapping splits"])
@pytest.mark.parametrize("n_seeds", [3, 5, 10])
def test_marks_keep_their_error_rate_under_the_null(world, n_seeds):
    """The calibration benchmark's simulation, 1,000 null comparisons: the corrected t-test
    rejects at most 6 % (Monte Carlo sd at 5 %: 0.7 points)."""
    import sys

    sys.path.insert(0, str(REPO / "benchmarks"))
    from calibration import rejection_rates

    rates = rejection_rates(world, n_seeds, 0.0, reps=1000, with_bootstrap=False)
    assert rates["corrected t"] <= 0.06


def table_of(runs_by_method):
    return group_runs([r for group in runs_by_method for r in group])


def test_clearly_better_and_clearly_worse_get_signed_marks():
    better = [run("ft-svm", s, 0.90, "natural") for s in range(3)]
    worse = [run("ft-svm", s, 0.55, "catdog") for s in range(3)]
    noisy = [run("ft-svm", s, 0.70 + d, "chest") for s, d in enumerate([0.072, -0.020, 0.061])]
    baseline = [run("ft-svm", s, 0.70, "none") for s in range(3)]
    stats = comparisons(table_of([better, worse, noisy, baseline]), "fe-svm", "ft-svm")
    marks = dict(zip(stats.source, stats["mark"], strict=True))
    assert marks == {"natural": 1, "catdog": -1, "chest": 0}
    assert (stats.p_adjusted >= stats.p_corrected_t).all()
    assert set(stats.family_size) == {3}
    config = {
        "targets": ["isic"],
        "tasks": {"isic": {"dataset": "isic"}},
        "report": {"fe_method": "fe-svm", "ft_method": "ft-svm", "groups": {}},
    }
    summary = summarise(runs_frame(better + worse + noisy + baseline))
    table = layout(config, summary, ["none", "natural", "catdog", "chest"], stats)
    row = table.iloc[0]
    assert row["natural FT"].endswith(" ↑") and row["catdog FT"].endswith(" ↓")
    assert not row["chest FT"].endswith(("↑", "↓"))


def test_a_single_seed_gets_an_interval_but_no_p_value():
    ft, fe = grid([0.2])
    result = paired_difference(ft, fe)
    assert result["spread_low"] > 0 and np.isnan(result["p_corrected_t"])


def test_holm_and_benjamini_hochberg_against_a_hand_computation():
    p = np.array([0.01, 0.04, 0.03, 0.005, np.nan])
    # Holm: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 -> 0.02, 0.03, 0.06, 0.04 -> monotone
    np.testing.assert_allclose(holm(p)[:4], [0.03, 0.06, 0.06, 0.02])
    # BH: sorted times 4/1, 4/2, 4/3, 4/4 -> 0.02, 0.02, 0.04, 0.04, then minimum from the top
    np.testing.assert_allclose(benjamini_hochberg(p)[:4], [0.02, 0.04, 0.04, 0.02])
    assert np.isnan(holm(p)[4]) and np.isnan(benjamini_hochberg(p)[4])
