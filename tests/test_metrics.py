import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from medtransfer.classifiers import class_scores, fit_and_score, make_classifier
from medtransfer.metrics import all_metrics, macro_auc_batch


def test_macro_auc_is_the_mean_of_one_vs_rest_aucs():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    scores = rng.normal(size=(200, 3)) + np.eye(3)[y]
    metrics = all_metrics(y, scores, ["a", "b", "c"])
    expected = np.mean([roc_auc_score(y == k, scores[:, k]) for k in range(3)])
    assert metrics["auc_macro"] == pytest.approx(expected)
    probabilities = np.exp(scores) / np.exp(scores).sum(1, keepdims=True)
    assert all_metrics(y, probabilities, ["a", "b", "c"])["auc_macro"] == pytest.approx(
        roc_auc_score(y, probabilities, multi_class="ovr", average="macro"), abs=0.02
    )
    assert np.sum(metrics["confusion_matrix"]) == 200
    assert set(metrics["f1_per_class"]) == {"a", "b", "c"}


def test_binary_svm_margins_give_the_binary_auc():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(120, 5))
    y = (x[:, 0] + 0.5 * rng.normal(size=120) > 0).astype(int)
    model = make_classifier("svm", 0).fit(x[:80], y[:80])
    scores = class_scores(model, x[80:], 2)
    metrics = all_metrics(y[80:], scores, ["neg", "pos"])
    assert metrics["auc_macro"] == pytest.approx(roc_auc_score(y[80:], scores[:, 1]))
    assert metrics["auc_macro"] > 0.8


@pytest.mark.parametrize("name", ["svm", "logreg", "mlp1", "mlp2", "dt", "rf"])
def test_every_classifier_scores_every_class(name):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(90, 6))
    y = np.arange(90) % 3
    x[:, :3] += 2 * np.eye(3)[y]
    first = fit_and_score(name, x[:60], y[:60], x[60:], 3, seed=5)
    assert first.shape == (30, 3)
    np.testing.assert_array_equal(first, fit_and_score(name, x[:60], y[:60], x[60:], 3, seed=5))
    assert all_metrics(y[60:], first, ["a", "b", "c"])["auc_macro"] > 0.7


def test_kappa_is_null_not_nan_when_undefined():
    metrics = all_metrics(
        np.array([0, 0, 0]), np.array([[1.0, 0], [1, 0], [1, 0]]), ["a", "b"], ordinal=True
    )
    assert metrics["kappa"] is None and metrics["kappa_quadratic"] is None
    assert metrics["auc_macro"] is None


def test_nominal_kappa_does_not_depend_on_how_the_classes_are_numbered():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 300)
    scores = rng.normal(size=(300, 3)) + 1.5 * np.eye(3)[y]
    relabel = np.array([2, 0, 1])  # class k is called relabel[k]
    renamed = np.empty_like(scores)
    renamed[:, relabel] = scores
    first, second = (
        all_metrics(y, scores, list("abc")),
        all_metrics(relabel[y], renamed, list("bca")),
    )
    assert first["kappa"] == pytest.approx(second["kappa"])
    assert first["kappa_quadratic"] is None  # not ordinal: not reported
    ordered = all_metrics(y, scores, list("abc"), ordinal=True)["kappa_quadratic"]
    reordered = all_metrics(relabel[y], renamed, list("bca"), ordinal=True)["kappa_quadratic"]
    assert ordered != pytest.approx(reordered)  # why quadratic kappa needs ordered classes


def test_batched_macro_auc_is_the_runs_macro_auc_also_with_a_class_missing():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 60)
    scores = rng.normal(size=(60, 3)) + np.eye(3)[y]
    draws = rng.integers(0, 60, size=(20, 60))
    batched = macro_auc_batch(y[draws], scores[draws])
    for b, draw in enumerate(draws):
        assert batched[b] == pytest.approx(
            all_metrics(y[draw], scores[draw], list("abc"))["auc_macro"]
        )
    missing = np.where(y == 2, 0, y)  # class 2 absent: the mean of the other two
    assert macro_auc_batch(missing[None], scores[None])[0] == pytest.approx(
        all_metrics(missing, scores, list("abc"))["auc_macro"]
    )


def test_balanced_class_weights_lift_the_minority_class():
    rng = np.random.default_rng(5)
    y = np.array([0] * 270 + [1] * 30)
    x = rng.normal(size=(300, 4)) + 0.8 * y[:, None]
    for name in ("svm", "logreg", "mlp1"):
        plain = fit_and_score(name, x, y, x, 2, seed=0, class_weights=False).argmax(1)
        balanced = fit_and_score(name, x, y, x, 2, seed=0, class_weights=True).argmax(1)
        assert (balanced == 1).sum() > (plain == 1).sum(), name


def test_flat_pixels_are_the_images_scaled_to_one_row_each():
    from medtransfer.classifiers import FlatPixels

    images = np.arange(4 * 2 * 2 * 3, dtype=np.uint8).reshape(4, 2, 2, 3)
    rows = FlatPixels(images)[np.array([3, 1])]
    assert rows.shape == (2, 12) and rows.dtype == np.float32
    np.testing.assert_allclose(rows[0], images[3].ravel() / 255.0)
    scores = fit_and_score("dt", FlatPixels(images)[[0, 1, 2, 3]], np.array([0, 0, 1, 1]),
                           FlatPixels(images)[[3]], 2, seed=0)  # fmt: skip
    assert scores.shape == (1, 2) and scores[0].argmax() == 1


def relu_features(n: int, dims: int, classes: int, seed: int = 0):
    """Overlapping classes after a ReLU and at fc2's scale: where liblinear's dual solver
    used to stop at its iteration cap."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 0.3, (classes, dims))
    y = rng.integers(0, classes, n)
    return np.maximum(centres[y] + rng.normal(0, 1, (n, dims)), 0) * 3.0, y


@pytest.mark.parametrize("classes", [2, 4])
def test_svm_is_the_original_studys_objective_solved_to_convergence(classes):
    """Margins equal OneVsRestClassifier(SVC(kernel='linear')) (libsvm itself, for the
    binary case SVC alone), with balanced weights as sample weights, and no warning."""
    import warnings

    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.svm import SVC
    from sklearn.utils.class_weight import compute_sample_weight

    x, y = relu_features(300, 256, classes)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a ConvergenceWarning would fail the test
        ours = make_classifier("svm", seed=0, class_weights=True).fit(x[:200], y[:200])
    weights = compute_sample_weight("balanced", y[:200])
    if classes == 2:
        reference = SVC(kernel="linear").fit(x[:200], y[:200], sample_weight=weights)
        expected = reference.decision_function(x[200:])
    else:
        expected = np.column_stack(
            [
                SVC(kernel="linear")
                .fit(x[:200], (y[:200] == k).astype(int), sample_weight=weights)
                .decision_function(x[200:])
                for k in range(classes)
            ]
        )
        unweighted = make_classifier("svm", seed=0, class_weights=False).fit(x[:200], y[:200])
        plain = OneVsRestClassifier(SVC(kernel="linear")).fit(x[:200], y[:200])
        np.testing.assert_allclose(
            unweighted.decision_function(x[200:]), plain.decision_function(x[200:]), atol=1e-6
        )
    np.testing.assert_allclose(ours.decision_function(x[200:]), expected, atol=1e-6)


def test_standardised_svm_is_the_raw_svm_on_standardised_features():
    """svm_features: standardised = the same SVM after scaling with the training rows'
    mean and sd (a feature scale 1e-4 no longer turns C=1 into w near 0)."""
    import numpy as np

    from medtransfer.classifiers import fit_and_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    x = (np.eye(3)[y] + rng.normal(0, 1, (300, 3))) * 1e-4  # tiny scale
    mean, sd = x[:200].mean(axis=0), x[:200].std(axis=0)
    scaled = fit_and_score("svm", x[:200], y[:200], x[200:], 3, 0, svm_features="standardised")
    by_hand = fit_and_score("svm", (x[:200] - mean) / sd, y[:200], (x[200:] - mean) / sd, 3, 0)
    assert np.allclose(scaled, by_hand, atol=1e-8)
    raw = fit_and_score("svm", x[:200], y[:200], x[200:], 3, 0)
    assert np.ptp(raw, axis=0).max() < 1e-3 < np.ptp(scaled, axis=0).min()  # raw: near ties


def test_new_metrics_agree_with_scikit_learn_and_direct_computation():
    from sklearn.metrics import (
        balanced_accuracy_score,
        brier_score_loss,
        precision_score,
        recall_score,
    )

    from medtransfer.metrics import (
        all_metrics,
        brier_score,
        expected_calibration_error,
        sensitivity_at_specificity,
    )

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 400)
    p1 = np.clip(0.5 + 0.35 * (2 * y - 1) + rng.normal(0, 0.25, 400), 0.01, 0.99)
    probabilities = np.column_stack([1 - p1, p1])
    m = all_metrics(y, probabilities, ["neg", "pos"], probabilities=True)
    predicted = probabilities.argmax(axis=1)
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, predicted))
    assert m["precision_per_class"]["pos"] == pytest.approx(precision_score(y, predicted))
    assert m["recall_per_class"]["neg"] == pytest.approx(recall_score(1 - y, 1 - predicted))
    assert m["brier"] == pytest.approx(2 * brier_score_loss(y, p1))  # the multi-class form
    assert brier_score(np.array([0, 1]), np.array([[1.0, 0.0], [0.0, 1.0]])) == 0.0
    # ECE by hand: equal-width bins of the top probability
    confidence, correct = probabilities.max(axis=1), predicted == y
    bins = np.minimum((confidence * 15).astype(int), 14)
    gaps = [(bins == b).mean() * abs(correct[bins == b].mean() - confidence[bins == b].mean())
            for b in range(15) if (bins == b).any()]  # fmt: skip
    expected = sum(gaps)
    assert m["ece"] == pytest.approx(expected)
    perfect = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(np.array([0, 1]), perfect) == 0.0
    # sensitivity at specificity: by scanning every threshold
    for spec in (0.90, 0.95):
        best = max(((p1 >= t)[y == 1].mean() for t in np.unique(p1)
                    if 1 - (p1 >= t)[y == 0].mean() >= spec), default=0.0)  # fmt: skip
        assert sensitivity_at_specificity(y == 1, p1, spec) == pytest.approx(best)
    assert set(m["sensitivity_at_specificity"]) == {"0.90", "0.95"}


def test_margins_are_not_called_probabilities():
    from medtransfer.metrics import all_metrics

    y = np.array([0, 1, 0, 1])
    margins = np.array([[1.5, -1.5], [-0.5, 0.5], [0.2, -0.2], [-2.0, 2.0]])
    m = all_metrics(y, margins, ["a", "b"])
    assert m["ece"] is None and m["brier"] is None and not m["scores_are_probabilities"]
    assert "not probabilities" in m["calibration_note"]
