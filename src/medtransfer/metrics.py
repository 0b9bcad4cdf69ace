"""Every number a run reports: macro one-vs-rest ROC AUC (the paper's headline), accuracy
and balanced accuracy, Cohen's kappa (quadratic too, for ordered grades only), F1, precision
and recall per class, F1's micro and macro averages, the confusion matrix, sensitivity at a
fixed specificity (what a screening reader sets), and calibration (expected calibration
error and Brier score) where the scores are probabilities.

Macro AUC has one definition here, used by runs, tables and the bootstrap alike: the mean of
the one-vs-rest AUCs of the classes that have both positive and negative test images; None
(NaN in arrays) where no class has.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    cohen_kappa_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

SPECIFICITIES = (0.90, 0.95)
ECE_BINS = 15  # equal-width bins of the top-class probability, as Guo et al. (2017)
NOT_PROBABILITIES = (
    "the scores are classifier margins (SVM, logistic regression's decision function), not "
    "probabilities: no calibration is measured"
)


def one_vs_rest_auc(y_true: np.ndarray, scores: np.ndarray) -> list[float | None]:
    """AUC of each class against the rest from its own score column; None where the test set
    holds only one side. (roc_auc_score's multi-class mode insists on probabilities; SVM
    margins are valid one-vs-rest scores, so each class is scored on its own.)"""
    aucs: list[float | None] = []
    for k in range(scores.shape[1]):
        positive = y_true == k
        aucs.append(
            float(roc_auc_score(positive, scores[:, k]))
            if 0 < positive.sum() < len(y_true)
            else None
        )
    return aucs


def macro_auc(per_class: list[float | None]) -> float | None:
    defined = [a for a in per_class if a is not None]
    return float(np.mean(defined)) if defined else None


def macro_auc_batch(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Macro AUC of many resamples at once: labels (b, n), scores (b, n, k) -> (b,).

    Rank form of the AUC (Mann-Whitney, ties averaged), the same number as roc_auc_score."""
    from scipy.stats import rankdata

    per_class = []
    for k in range(scores.shape[2]):
        positive = labels == k
        n_pos = positive.sum(axis=1)
        n_neg = labels.shape[1] - n_pos
        ranks = rankdata(scores[:, :, k], axis=1)
        rank_sum = np.where(positive, ranks, 0).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            auc = (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
        per_class.append(np.where((n_pos > 0) & (n_neg > 0), auc, np.nan))
    stacked = np.stack(per_class, axis=1)
    defined = np.isfinite(stacked)
    total = np.where(defined, stacked, 0).sum(axis=1)
    count = defined.sum(axis=1)
    return np.divide(total, count, out=np.full(len(total), np.nan), where=count > 0)


def sensitivity_at_specificity(positive: np.ndarray, score: np.ndarray, specificity: float):
    """The highest sensitivity (true-positive rate) of any threshold on `score` whose
    specificity is at least `specificity`; None without both positives and negatives."""
    if not 0 < positive.sum() < len(positive):
        return None
    false_positive, true_positive, _ = roc_curve(positive, score)
    allowed = false_positive <= 1.0 - specificity + 1e-12
    return float(true_positive[allowed].max())


def macro_sensitivity_at_specificity(y_true: np.ndarray, scores: np.ndarray) -> dict:
    """{specificity: mean over classes of each class's one-vs-rest sensitivity at it}."""
    result = {}
    for specificity in SPECIFICITIES:
        values = [sensitivity_at_specificity(y_true == k, scores[:, k], specificity)
                  for k in range(scores.shape[1])]  # fmt: skip
        defined = [v for v in values if v is not None]
        result[f"{specificity:.2f}"] = float(np.mean(defined)) if defined else None
    return result


def expected_calibration_error(
    y_true: np.ndarray, probabilities: np.ndarray, bins: int = ECE_BINS
) -> float:
    """Σ_b n_b/n · |accuracy_b − confidence_b| over equal-width bins of the top-class
    probability (Guo et al. 2017); the top probability 1.0 falls in the last bin."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == y_true
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(total)


def brier_score(y_true: np.ndarray, probabilities: np.ndarray) -> float:
    """Brier's (1950) multi-class score: the mean over images of Σ_k (p_k − [y = k])². For
    two classes it is twice scikit-learn's brier_score_loss of the positive class."""
    onehot = np.eye(probabilities.shape[1])[y_true]
    return float(np.mean(np.sum((probabilities - onehot) ** 2, axis=1)))


def calibration(y_true: np.ndarray, scores: np.ndarray, probabilities: bool) -> dict[str, Any]:
    if not probabilities:
        return {"ece": None, "brier": None, "calibration_note": NOT_PROBABILITIES}
    return {
        "ece": expected_calibration_error(y_true, scores),
        "ece_bins": ECE_BINS,
        "brier": brier_score(y_true, scores),
    }


def all_metrics(
    y_true: np.ndarray,
    scores: np.ndarray,
    classes: list[str],
    ordinal: bool = False,
    probabilities: bool = False,
) -> dict[str, Any]:
    """Every metric of one run. Kappa is unweighted: the classes of most tasks have no order,
    and a weighted kappa would change with their (alphabetical) numbering. Quadratic kappa
    only where the task declares its classes ordered grades (`ordinal: true`). Calibration
    only where `probabilities` (a softmax, a forest's or an MLP's class probabilities): an
    SVM's margins are not probabilities, and none are made of them."""
    y_true = np.asarray(y_true)
    if scores.shape != (len(y_true), len(classes)):
        raise ValueError(
            f"scores of shape {scores.shape} for {len(y_true)} images and {len(classes)} classes"
        )
    y_pred = scores.argmax(axis=1)
    labels = list(range(len(classes)))
    per_class_auc = one_vs_rest_auc(y_true, scores)
    f1 = f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    precision = precision_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    recall = recall_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    return {
        "auc_macro": macro_auc(per_class_auc),
        "auc_per_class": dict(zip(classes, per_class_auc, strict=True)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "kappa": _finite(cohen_kappa_score(y_true, y_pred, labels=labels)),
        "kappa_quadratic": (
            _finite(cohen_kappa_score(y_true, y_pred, labels=labels, weights="quadratic"))
            if ordinal
            else None
        ),
        "ordinal": ordinal,
        "f1_per_class": dict(zip(classes, map(float, f1), strict=True)),
        "f1_micro": float(
            f1_score(y_true, y_pred, labels=labels, average="micro", zero_division=0)
        ),
        "f1_macro": float(
            f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
        ),
        "precision_per_class": dict(zip(classes, map(float, precision), strict=True)),
        "recall_per_class": dict(zip(classes, map(float, recall), strict=True)),
        "sensitivity_at_specificity": macro_sensitivity_at_specificity(y_true, scores),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "scores_are_probabilities": probabilities,
        **calibration(y_true, scores, probabilities),
    }


def _finite(value: float) -> float | None:
    """Kappa is undefined (NaN) when predictions or truth hold one class; JSON says null."""
    return float(value) if np.isfinite(value) else None
