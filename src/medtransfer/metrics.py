"""Every number a run reports: macro one-vs-rest ROC AUC (the paper's headline), accuracy,
quadratic Cohen's kappa, F1 per class with micro and macro averages, the confusion matrix."""

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


def all_metrics(y_true: np.ndarray, scores: np.ndarray, classes: list[str]) -> dict[str, Any]:
    y_true = np.asarray(y_true)
    if scores.shape != (len(y_true), len(classes)):
        raise ValueError(
            f"scores of shape {scores.shape} for {len(y_true)} images and {len(classes)} classes"
        )
    y_pred = scores.argmax(axis=1)
    labels = list(range(len(classes)))
    per_class_auc = one_vs_rest_auc(y_true, scores)
    defined = [a for a in per_class_auc if a is not None]
    f1 = f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    return {
        "auc_macro": float(np.mean(defined)) if defined else None,
        "auc_per_class": dict(zip(classes, per_class_auc, strict=True)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "kappa_quadratic": _finite(
            cohen_kappa_score(y_true, y_pred, labels=labels, weights="quadratic")
        ),
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
