"""Every number a run reports: macro one-vs-rest ROC AUC (the paper's headline), accuracy,
Cohen's kappa (quadratic too, for ordered grades only), F1 per class with micro and macro
averages, the confusion matrix.

Macro AUC has one definition here, used by runs, tables and the bootstrap alike: the mean of
the one-vs-rest AUCs of the classes that have both positive and negative test images; None
(NaN in arrays) where no class has.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    cohen_kappa_score,
    confusion_matrix,
    f1_score,
    roc_auc_score,
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


def all_metrics(
    y_true: np.ndarray, scores: np.ndarray, classes: list[str], ordinal: bool = False
) -> dict[str, Any]:
    """Every metric of one run. Kappa is unweighted: the classes of most tasks have no order,
    and a weighted kappa would change with their (alphabetical) numbering. Quadratic kappa
    only where the task declares its classes ordered grades (`ordinal: true`)."""
    y_true = np.asarray(y_true)
    if scores.shape != (len(y_true), len(classes)):
        raise ValueError(
            f"scores of shape {scores.shape} for {len(y_true)} images and {len(classes)} classes"
        )
    y_pred = scores.argmax(axis=1)
    labels = list(range(len(classes)))
    per_class_auc = one_vs_rest_auc(y_true, scores)
    f1 = f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    return {
        "auc_macro": macro_auc(per_class_auc),
        "auc_per_class": dict(zip(classes, per_class_auc, strict=True)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
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
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def _finite(value: float) -> float | None:
    """Kappa is undefined (NaN) when predictions or truth hold one class; JSON says null."""
    return float(value) if np.isfinite(value) else None
