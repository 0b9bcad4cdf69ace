"""Transferability estimators and feature-reuse probes on synthetic data whose answer is
known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize
from scipy.stats import ortho_group

from medtransfer import transferability as tr
from medtransfer.spectrum import Spectrum


def blobs(separation: float, n: int = 300, dims: int = 20, classes: int = 3, seed: int = 0):
    """Gaussian classes whose means lie `separation` apart along orthogonal axes."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    means = np.zeros((classes, dims))
    means[np.arange(classes), np.arange(classes)] = separation
    return means[labels] + rng.standard_normal((n, dims)), labels


@pytest.mark.parametrize("name", ["logme", "hscore", "gbc", "nleep"])
def test_separable_classes_score_above_overlapping_ones(name):
    separable, labels = blobs(6.0)
    overlapping, _ = blobs(0.3)
    scores = [
        tr.estimate_all(f, labels, estimators=(name,))[name] for f in (separable, overlapping)
    ]
    assert scores[0] > scores[1]


def direct_evidence(features: np.ndarray, y: np.ndarray) -> float:
    """max over α, β of log N(y; 0, β⁻¹I + α⁻¹FFᵀ) / n, by a general-purpose optimiser."""
    n = len(y)

    def negative(log_params):
        alpha, beta = np.exp(log_params)
        cov = np.eye(n) / beta + features @ features.T / alpha
        _, logdet = np.linalg.slogdet(cov)
        return 0.5 * (logdet + y @ np.linalg.solve(cov, y) + n * math.log(2 * math.pi))

    best = minimize(negative, x0=np.zeros(2), method="Nelder-Mead", options={"xatol": 1e-8})
    return -best.fun / n


def test_logme_agrees_with_a_slow_direct_maximisation():
    features, labels = blobs(1.5, n=60, dims=8, classes=2, seed=3)
    onehot = (labels[:, None] == np.arange(2)).astype(float)
    expected = np.mean([direct_evidence(features, onehot[:, k]) for k in range(2)])
    assert tr.logme(features, labels) == pytest.approx(expected, abs=1e-5)


def test_logme_takes_more_dimensions_than_rows():
    features, labels = blobs(2.0, n=40, dims=100, classes=2)
    onehot = (labels[:, None] == np.arange(2)).astype(float)
    expected = np.mean([direct_evidence(features, onehot[:, k]) for k in range(2)])
    assert tr.logme(features, labels) == pytest.approx(expected, abs=1e-5)


def test_logme_of_relu_features_with_dead_units_and_a_large_mean():
    """LogME models the uncentred features; it is computed from the centred spectrum by a
    rank-one update, which a mean far from 0 and exactly-zero columns must not upset."""
    features, labels = blobs(1.0, n=50, dims=80, classes=3, seed=5)
    features = np.maximum(features + 3.0, 0)
    features[:, :10] = 0.0  # dead ReLU units
    onehot = (labels[:, None] == np.arange(3)).astype(float)
    expected = np.mean([direct_evidence(features, onehot[:, k]) for k in range(3)])
    assert tr.logme(features, labels) == pytest.approx(expected, abs=1e-5)


def test_logme_of_more_rows_than_dimensions_with_dead_and_saturated_units():
    """More rows than dimensions: LogME solves with the tridiagonal form, the units that do
    not vary left out of it; a saturated one (constant, not zero) puts the mean outside the
    centred features' range, so the uncentred product is decomposed."""
    features, labels = blobs(1.0, n=150, dims=30, classes=3, seed=7)
    features = np.maximum(features + 0.5, 0)
    features[:, :4] = 0.0
    onehot = (labels[:, None] == np.arange(3)).astype(float)
    expected = np.mean([direct_evidence(features, onehot[:, k]) for k in range(3)])
    assert tr.logme(features, labels) == pytest.approx(expected, abs=1e-5)
    features[:, 4] = 6.0
    expected = np.mean([direct_evidence(features, onehot[:, k]) for k in range(3)])
    assert tr.logme(features, labels) == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize(("rows", "dims", "dead"), [(60, 300, 90), (100, 400, 0)])
def test_logme_of_near_zero_features(rows, dims, dead):
    """An untrained network's features can be ~1e-12 with many dead units (found in a grid:
    LogME divided by zero); fewer rows than dimensions puts the mean where the centred
    features do not vary. The evidence does not depend on the features' scale (α absorbs
    it), so the direct maximisation runs on the same features at unit scale."""
    rng = np.random.default_rng(0)
    labels = np.arange(rows) % 5
    features = np.abs(rng.normal(size=(rows, dims)))
    features[:, :dead] = 0
    features[:, dead:] += labels[:, None] == np.arange(dims - dead) % 5
    onehot = (labels[:, None] == np.arange(5)).astype(float)
    expected = np.mean([direct_evidence(features, onehot[:, k]) for k in range(5)])
    assert tr.logme(features * 1e-12, labels) == pytest.approx(expected, abs=1e-5)


def test_features_whose_product_overflows_are_named_not_decomposed():
    features, labels = blobs(1.0, n=60, dims=20)
    with pytest.raises(
        tr.EstimatorError, match=r"features too large.*largest \|value\| [0-9.]+e\+200"
    ):
        tr.estimate_all(features * 1e200, labels)


def test_logme_of_all_dead_features_is_the_evidence_of_noise_alone():
    """Every unit dead (F = 0): y = ε whatever α, so the evidence is max over β of
    log N(y; 0, β⁻¹I) / n, here by a general-purpose optimiser. The fixed-point updates
    divided 0 by 0 there. Features whose products underflow stop with a message."""
    from scipy.optimize import minimize_scalar

    labels = np.arange(60) % 3
    features = np.zeros((60, 5))

    def noise_evidence(y):
        def negative(log_beta):
            beta = math.exp(log_beta)
            return -(len(y) / 2 * math.log(beta / (2 * math.pi)) - beta / 2 * y @ y)

        return -minimize_scalar(negative, bounds=(-10, 10), method="bounded").fun / len(y)

    onehot = (labels[:, None] == np.arange(3)).astype(float)
    expected = np.mean([noise_evidence(onehot[:, k]) for k in range(3)])
    assert tr.logme(features, labels) == pytest.approx(expected, abs=1e-6)
    features[labels == 1] = 1e-200  # its products underflow to 0: the evidence's shape is lost
    with pytest.raises(tr.EstimatorError, match="logme: no maximum of the evidence"):
        tr.logme(features, labels)
    with pytest.raises(tr.EstimatorError, match=r"features \(60, 0\) have no columns"):
        tr.estimate_all(features[:, :0], labels)


def test_hscore_equals_its_closed_form_on_a_hand_example():
    # one feature, two classes of two rows: class means ±1 around 0, all rows at ±1
    features = np.array([[-1.0], [-1.0], [1.0], [1.0]])
    labels = np.array([0, 0, 1, 1])
    # Cov_f = 4/3, Cov_g = 4/3 (every row equals its class mean): H = 1
    assert tr.hscore(features, labels) == pytest.approx(1.0)
    # noise inside the classes: Cov_f = (4 + 4 * 0.25) / 3, Cov_g = 4/3
    noisy = np.array([[-1.5], [-0.5], [0.5], [1.5]])
    assert tr.hscore(noisy, labels) == pytest.approx((4 / 3) / (5 / 3))


@pytest.mark.parametrize("dead_columns", [0, 5])
def test_hscore_matches_the_authors_pinv_form(dead_columns):
    features, labels = blobs(1.0, n=200, dims=30)
    features[:, :dead_columns] = 0.0  # dead ReLU units: a singular Cov_f
    g = np.stack([features[labels == c].mean(axis=0) for c in labels])
    expected = np.trace(
        np.linalg.pinv(np.cov(features, rowvar=False), rcond=1e-15) @ np.cov(g, rowvar=False)
    )
    assert tr.hscore(features, labels) == pytest.approx(expected, rel=1e-6)


def test_hscore_ignores_a_constant_feature():
    features, labels = blobs(1.0, n=200, dims=10)
    features[:, 0] = 3.0
    g = np.stack([features[labels == c].mean(axis=0) for c in labels])
    expected = np.trace(
        np.linalg.pinv(np.cov(features, rowvar=False), rcond=1e-15) @ np.cov(g, rowvar=False)
    )
    assert tr.hscore(features, labels) == pytest.approx(expected, rel=1e-6)


def test_gbc_is_zero_for_far_apart_classes_and_minus_pairs_for_identical_ones():
    far, labels = blobs(200.0, classes=2)
    assert tr.gbc(far, labels) == pytest.approx(0.0, abs=1e-12)
    same = np.random.default_rng(0).standard_normal((4000, 5))
    assert tr.gbc(same, np.arange(4000) % 2) == pytest.approx(-2.0, abs=0.01)


def test_leep_and_nce_reward_a_softmax_that_predicts_the_labels():
    labels = np.arange(200) % 2
    informative = np.eye(3)[labels] * 0.9 + 0.1 / 3
    uninformative = np.full((200, 3), 1 / 3)
    assert tr.leep(informative, labels) > tr.leep(uninformative, labels)
    # uniform softmax: the expected predictor is the label prior, LEEP = log(1/2)
    assert tr.leep(uninformative, labels) == pytest.approx(math.log(0.5))
    # hard predictions that determine the label: H(Y|Z) = 0
    assert tr.nce(informative, labels) == pytest.approx(0.0)
    assert tr.nce(uninformative, labels) == pytest.approx(math.log(0.5))


def test_estimate_all_leaves_leep_out_without_a_source_softmax():
    features, labels = blobs(2.0)
    scores = tr.estimate_all(features, labels)
    assert scores["leep"] is None and scores["nce"] is None
    assert all(np.isfinite(scores[k]) for k in ("logme", "hscore", "gbc", "nleep"))
    with pytest.raises(tr.EstimatorError, match="unknown estimator"):
        tr.estimate_all(features, labels, estimators=("logme", "leap"))
    with pytest.raises(tr.EstimatorError, match="two classes"):
        tr.logme(features, np.zeros(len(features)))


def test_estimators_are_reproducible():
    features, labels = blobs(1.0)
    assert tr.estimate_all(features, labels, seed=4) == tr.estimate_all(features, labels, seed=4)


def test_cka_of_a_representation_with_itself_is_one_and_invariant():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 12))
    rotated = x @ ortho_group.rvs(12, random_state=1) * 7.5
    assert tr.linear_cka(x, x) == pytest.approx(1.0)
    assert tr.linear_cka(x, rotated) == pytest.approx(1.0)
    assert tr.linear_cka(x, x[:, :6] @ rng.standard_normal((6, 12))) > 0.5  # shares x


def test_cka_of_independent_random_representations_is_near_zero():
    """The biased CKA gives 0.97 here (128 images, 4,096 features): an artefact of
    dimension, not similarity."""
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((128, 4096)), rng.standard_normal((128, 4096))
    assert abs(tr.linear_cka(x, y)) < 0.05
    assert tr.linear_cka(x, x) == pytest.approx(1.0)


def test_unbiased_hsic_is_song_et_al_u_statistic():
    """Song et al. (2012), eq. 5: the U-statistic over all ordered 4-tuples of distinct
    images of h = Σ over their orderings of k_tu l_tu + k_tu l_vw - 2 k_tu l_tv, / 4!."""
    from itertools import permutations

    rng = np.random.default_rng(2)
    k, l = tr.gram(rng.standard_normal((7, 3))), tr.gram(rng.standard_normal((7, 5)))  # noqa: E741
    total, count = 0.0, 0
    for tuple4 in permutations(range(7), 4):
        h = sum(
            k[t, u] * l[t, u] + k[t, u] * l[v, w] - 2 * k[t, u] * l[t, v]
            for t, u, v, w in permutations(tuple4)
        )
        total += h / 24
        count += 1
    assert tr.unbiased_hsic(k, l) == pytest.approx(total / count)


def test_knn_accuracy_separates_separable_classes():
    features, labels = blobs(8.0)
    assert tr.knn_accuracy(features[:200], labels[:200], features[200:], labels[200:], 5) > 0.95
    noise, _ = blobs(0.0)
    assert tr.knn_accuracy(noise[:200], labels[:200], noise[200:], labels[200:], 5) < 0.6


def estimates_and_gains(scores: dict[str, list[float]], gains: dict[str, list[float]]):
    """Frames as the transferability stage reads them: one target, seeds 0..n-1."""
    est = pd.DataFrame(
        [
            {"target": "t", "source": s, "seed": i, "estimator": "logme", "score": v}
            for s, values in scores.items()
            for i, v in enumerate(values)
        ]
    )
    gain = pd.DataFrame(
        [
            {"target": "t", "source": s, "seed": i, "kind": kind, "gain": v}
            for s, values in gains.items()
            for i, v in enumerate(values)
            for kind in ("ft", "fe")
        ]
    )
    return est, gain


def test_tau_is_one_for_an_estimator_that_ranks_as_fine_tuning_does():
    from medtransfer.ranking import tau_table

    est, gain = estimates_and_gains(
        {"a": [1, 1.1, 0.9], "b": [2, 2.1, 1.9], "c": [3, 3.2, 2.8], "none": [0, 0, 0]},
        {"a": [0.01, 0.02, 0.0], "b": [0.05, 0.04, 0.06], "c": [0.1, 0.12, 0.09]},
    )
    row = tau_table(est, gain, n_boot=200).query("gain == 'ft'").iloc[0]
    assert row.tau == pytest.approx(1.0) and row.weighted_tau == pytest.approx(1.0)
    assert row.tau_low == pytest.approx(1.0) and row.n_sources == 3  # 'none' is the reference
    # three sources: a perfect ranking happens by chance in 2 of the 3! orderings
    assert row.p_permutation == pytest.approx(2 / 6)
    assert "no ranking of them can be significant" in row.note
    reversed_gain = gain.assign(gain=-gain.gain)
    assert tau_table(est, reversed_gain, n_boot=200).tau.iloc[0] == pytest.approx(-1.0)


def test_permutation_p_is_exact_and_counts_ties():
    from scipy.stats import kendalltau

    from medtransfer.ranking import _orderings, null_taus, permutation_p

    rng = np.random.default_rng(0)
    scores, gains = np.array([1.0, 2, 3, 4, 5]), np.array([0.1, 0.2, 0.2, 0.5, 0.3])
    orderings = _orderings(5, rng)
    assert len(orderings) == 120
    taus = null_taus(scores, gains, orderings)
    expected = [kendalltau(scores, gains[o]).statistic for o in orderings[::7]]
    np.testing.assert_allclose(taus[::7], expected)
    assert permutation_p(scores, np.arange(5.0), rng) == pytest.approx(2 / 120)
    observed = abs(kendalltau(scores, gains).statistic)
    assert permutation_p(scores, gains, rng) == pytest.approx(
        np.mean(np.abs(taus) >= observed - 1e-12)
    )


def test_the_bootstraps_tau_is_scipys_bit_for_bit_ties_and_all():
    from scipy.stats import kendalltau

    from medtransfer.ranking import taus_b

    rng, undefined = np.random.default_rng(3), 0
    for n in (3, 4, 7):
        scores = rng.integers(0, 3, size=(300, n)).astype(float)  # many ties, some rows all tied
        gains = rng.integers(0, 4, size=(300, n)) / 100
        found = taus_b(scores, gains)
        expected = np.array(
            [kendalltau(s, g).statistic for s, g in zip(scores, gains, strict=True)]
        )
        np.testing.assert_array_equal(found, expected)
        undefined += np.isnan(found).sum()
    assert undefined > 0


def test_pooled_tau_averages_targets_with_a_joint_null():
    from medtransfer.ranking import tau_table

    sources = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0, "e": 5.0}
    frames = []
    for target in ("t1", "t2"):
        est, gain = estimates_and_gains(
            {s: [v, v + 0.1] for s, v in sources.items()},
            {s: [v / 10, v / 10 + 0.01] for s, v in sources.items()},
        )
        frames.append((est.assign(target=target), gain.assign(target=target)))
    table = tau_table(
        pd.concat([f[0] for f in frames]), pd.concat([f[1] for f in frames]), n_boot=50
    )
    pooled = table[(table.target == "pooled") & (table.gain == "ft")].iloc[0]
    assert pooled.tau == pytest.approx(1.0)
    # both targets perfect by chance: (2/120)^2 in theory; the draws' floor is 1/20001
    assert pooled.p_permutation < 0.001
    per_target = table[(table.target == "t1") & (table.gain == "ft")].iloc[0]
    assert per_target.p_permutation == pytest.approx(2 / 120)
    assert per_target.undefined_resamples == 0


def test_tau_says_why_where_it_cannot_be_given():
    from medtransfer.ranking import tau_markdown, tau_table

    est, gain = estimates_and_gains({"a": [1, 2], "b": [2, 3]}, {"a": [0.1, 0.2], "b": [0, 0]})
    table = tau_table(est, gain, n_boot=100)
    assert table.tau.isna().all()
    assert "a ranking needs at least 3" in table.note.iloc[0]
    assert "nan" not in tau_markdown(table).lower()


def test_seed_gains_pair_each_run_with_no_transfer_on_its_seed():
    from medtransfer.ranking import seed_gains
    from medtransfer.runs import RunRecord

    def run(source, method, seed, auc):
        return RunRecord("t", source, method, seed, ["a", "b"], auc, {}, 0.5, None, None, {}, 0.5,
                   0.5, [[1]], {}, [], [])  # fmt: skip

    runs = [run("none", "ft-svm", 0, 0.6), run("none", "ft-svm", 1, 0.7),
            run("x", "ft-svm", 0, 0.8), run("x", "fe-svm", 1, 0.65)]  # fmt: skip
    gains = seed_gains(runs, "fe-svm", "ft-svm").set_index(["kind", "seed"]).gain
    assert gains[("ft", 0)] == pytest.approx(0.2) and gains[("fe", 1)] == pytest.approx(-0.05)


def test_choose_sources_takes_the_top_k_and_names_what_it_needs():
    from medtransfer.adaptive import choose_sources

    est, _ = estimates_and_gains({"a": [1, 1], "b": [3, 0], "c": [2, 2]}, {})
    choice = choose_sources(est, "logme", 2, ["a", "b", "c"], seed=0)
    assert choice["selected"] == ["b", "c"] and choice["left_out"] == ["a"]
    # seed 1's own estimates: b is last there
    assert choose_sources(est, "logme", 2, ["a", "b", "c"], seed=1)["left_out"] == ["b"]
    with pytest.raises(ValueError, match="no estimate on seed 0 for source.*d"):
        choose_sources(est, "logme", 1, ["a", "d"], seed=0)


def test_a_seeds_choice_never_reads_its_own_test_images():
    """Seed 0's test images lie in seed 1's train+val rows. Make them (and only them) look
    perfectly separable for source b: seed 1's estimates change, seed 0's choice does not."""
    from medtransfer.adaptive import choose_sources
    from medtransfer.estimates import estimate_seeds

    rng = np.random.default_rng(5)
    n = 200
    labels = np.arange(n) % 2
    order = [rng.permutation(n), rng.permutation(n)]
    splits = [
        {"seed": s, "train": o[:140].tolist(), "val": o[140:160].tolist(), "test": o[160:].tolist()}
        for s, o in enumerate(order)
    ]
    features = {src: rng.standard_normal((n, 16)) for src in ("a", "b")}
    features["a"][:, 0] += labels  # a carries the labels a little

    def choices(features):
        rows = []
        for src, x in features.items():
            est = estimate_seeds(x, {}, labels, splits, ("logme",))
            rows.append(est.assign(target="t", source=src))
        table = pd.concat(rows)
        return table, [choose_sources(table, "logme", 1, ["a", "b"], s)["selected"] for s in (0, 1)]

    before, chosen_before = choices(features)
    changed = {k: v.copy() for k, v in features.items()}
    test0 = np.asarray(splits[0]["test"])
    changed["b"][test0, :] = labels[test0, None] * 50.0  # seed 0's test rows only
    after, chosen_after = choices(changed)
    assert chosen_after[0] == chosen_before[0] == ["a"]
    seed1 = (before.seed == 1) & (before.source == "b")
    assert not np.allclose(before[seed1].score, after[seed1].score)


def test_hscore_saturates_at_classes_minus_one_with_fewer_rows_than_dimensions():
    rng = np.random.default_rng(0)
    labels = np.arange(40) % 4
    for features in (
        rng.standard_normal((40, 100)),
        rng.standard_normal((40, 100)) + labels[:, None],
    ):
        assert tr.hscore(features, labels) == pytest.approx(3.0)


def test_a_grid_without_transfer_sources_writes_an_empty_tau_table(tmp_path):
    from medtransfer.ranking import estimate_summary, tau_table, write_estimate_figure

    est, _ = estimates_and_gains({"none": [1.0, 2.0]}, {})
    gains = pd.DataFrame(columns=["target", "source", "seed", "kind", "gain"])
    table = tau_table(est, gains, n_boot=100)
    assert len(table) == 0 and "tau" in table.columns
    write_estimate_figure(estimate_summary(est, gains), str(tmp_path / "e.png"))
    assert (tmp_path / "e.png").stat().st_size > 0


def test_gbc_spherical_against_its_formula_and_the_variance_floor():
    """Two classes on 2 principal components with spherical Gaussians: D_B by hand."""
    rng = np.random.default_rng(3)
    labels = np.repeat([0, 1], 60)
    features = rng.standard_normal((120, 2)) * [1.0, 0.5] + labels[:, None] * [1.5, 0.0]
    spectrum = Spectrum.of(features, centred=True)
    reduced = spectrum.principal_components(features, 2)
    mean = [reduced[labels == c].mean(axis=0) for c in (0, 1)]
    var = [max(reduced[labels == c].var(axis=0).mean(), 1e-4) for c in (0, 1)]
    pooled = (var[0] + var[1]) / 2
    distance = np.sum((mean[0] - mean[1]) ** 2) / (8 * pooled) + 0.5 * 2 * (
        np.log(pooled) - 0.5 * (np.log(var[0]) + np.log(var[1]))
    )
    assert tr.gbc(features, labels, dims=2) == pytest.approx(-2 * np.exp(-distance))
    assert tr.gbc(features, labels, dims=2, gaussian="diagonal") != pytest.approx(
        tr.gbc(features, labels, dims=2)
    )
    # constant classes: the floor keeps the distance finite (far apart: GBC ~ 0)
    constant = np.repeat([[0.0, 0.0], [1.0, 1.0]], 10, axis=0)
    assert tr.gbc(constant, np.repeat([0, 1], 10), dims=2) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(tr.EstimatorError, match="unknown gaussian"):
        tr.gbc(features, labels, gaussian="round")


def test_nleep_covariance_switch_changes_the_mixture():
    features, labels = blobs(1.0)
    full = tr.nleep(features, labels, seed=0)
    assert full == tr.nleep(features, labels, seed=0, covariance="full")
    assert full != pytest.approx(tr.nleep(features, labels, seed=0, covariance="diag"))
    scores = tr.estimate_all(features, labels, nleep_covariance="diag", gbc_gaussian="diagonal")
    assert scores["nleep"] == pytest.approx(tr.nleep(features, labels, seed=0, covariance="diag"))
    with pytest.raises(tr.EstimatorError, match="unknown covariance"):
        tr.nleep(features, labels, covariance="tied")
