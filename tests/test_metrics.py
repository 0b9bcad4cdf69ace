import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from medtransfer.classifiers import class_scores, fit_and_score, make_classifier
from medtransfer.metrics import all_metrics


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
    metrics = all_metrics(np.array([0, 0, 0]), np.array([[1.0, 0], [1, 0], [1, 0]]), ["a", "b"])
    assert metrics["kappa_quadratic"] is None and metrics["auc_macro"] is None
