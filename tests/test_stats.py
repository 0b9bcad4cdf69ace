"""The statistics behind Table II's marks, on small hand-made runs (no Snakemake)."""

import numpy as np
import pytest

from medtransfer.reporting import layout, summarise
from medtransfer.runs import Run, group_runs, runs_frame
from medtransfer.stats import (
    benjamini_hochberg,
    comparisons,
    holm,
    paired_difference,
)

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
    return Run(
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
        sizes={"test": len(LABELS)},
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
    # the seed with a negative difference is drawn three times in 1 of 27 draws
    assert result["ci_low"] < 0 < result["ci_high"]
    assert result["p_bootstrap"] > 0.05
    assert result["p_paired_t"] == pytest.approx(0.32, abs=0.02)


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
    assert (stats.p_adjusted >= stats.p_bootstrap).all()
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
    assert result["ci_low"] > 0 and np.isnan(result["p_bootstrap"])


def test_holm_and_benjamini_hochberg_against_a_hand_computation():
    p = np.array([0.01, 0.04, 0.03, 0.005, np.nan])
    # Holm: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 -> 0.02, 0.03, 0.06, 0.04 -> monotone
    np.testing.assert_allclose(holm(p)[:4], [0.03, 0.06, 0.06, 0.02])
    # BH: sorted times 4/1, 4/2, 4/3, 4/4 -> 0.02, 0.02, 0.04, 0.04, then minimum from the top
    np.testing.assert_allclose(benjamini_hochberg(p)[:4], [0.02, 0.04, 0.04, 0.02])
    assert np.isnan(holm(p)[4]) and np.isnan(benjamini_hochberg(p)[4])
