"""Classifiers on features (the paper's linear one-vs-rest SVM and Pal's alternatives) and on
raw pixels (Patel's baselines). Every estimator gets the run's seed, and by default balanced
class weights (n / (k * n_c) per class, as the networks' loss): without them a classifier on
an imbalanced target (ISIC: 398 benign, 159 malignant) leans to the majority class."""

from __future__ import annotations

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils.class_weight import compute_sample_weight


def make_classifier(
    name: str, seed: int, svm_c: float = 1.0, threads: int = 1, class_weights: bool = True
) -> ClassifierMixin:
    """The SVM is the original study's SVC(kernel='linear', probability=True) objective solved by
    liblinear: hinge loss on the raw features (no scaling, as the paper), an intercept that is
    all but unpenalised (intercept_scaling), one-vs-rest margins instead of Platt-scaled
    probabilities (monotone per class, so the same AUC) - without the Platt cross-validation
    and libsvm's kernel solver that make the original way ~60x slower (see benchmarks/).

    The MLPs take no class_weight; `fit_and_score` gives them the same weights per sample."""
    weight = "balanced" if class_weights else None
    if name == "svm":
        return LinearSVC(
            C=svm_c,
            loss="hinge",
            intercept_scaling=10,
            max_iter=10000,
            random_state=seed,
            class_weight=weight,
        )
    if name == "logreg":
        return make_pipeline(
            StandardScaler(),
            LogisticRegression(max_iter=2000, random_state=seed, class_weight=weight),
        )
    if name in ("mlp1", "mlp2"):
        hidden = (256,) if name == "mlp1" else (256, 128)
        return make_pipeline(
            StandardScaler(),
            MLPClassifier(hidden, max_iter=500, early_stopping=True, random_state=seed),
        )
    if name == "dt":
        return DecisionTreeClassifier(random_state=seed, class_weight=weight)
    if name == "rf":
        return RandomForestClassifier(
            n_estimators=200, random_state=seed, n_jobs=threads, class_weight=weight
        )
    raise ValueError(f"unknown classifier {name!r}")


class FlatPixels:
    """Rows of a (memory-mapped) image array as flat float vectors in [0, 1], read only when
    indexed: the pixel baselines' features, without a copy of the whole array."""

    def __init__(self, images: np.ndarray):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, rows: object) -> np.ndarray:
        block = np.asarray(self.images[rows], dtype=np.float32) / 255.0
        return block.reshape(len(block), -1)


def class_scores(model: ClassifierMixin, x: np.ndarray, n_classes: int) -> np.ndarray:
    """(n, k) scores, one column per class: decision functions where the model has them."""
    if hasattr(model, "decision_function"):
        scores = model.decision_function(x)
        if scores.ndim == 1:  # binary: one margin, positive means class 1
            scores = np.column_stack([-scores, scores])
    else:
        scores = model.predict_proba(x)
    present = model.classes_
    if len(present) != n_classes:  # a class absent from train gets the lowest score
        full = np.full((len(x), n_classes), scores.min() - 1.0)
        full[:, present] = scores
        scores = full
    return np.asarray(scores, dtype=np.float64)


def fit_and_score(
    name: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    n_classes: int,
    seed: int,
    svm_c: float = 1.0,
    threads: int = 1,
    class_weights: bool = True,
) -> np.ndarray:
    model = make_classifier(name, seed, svm_c, threads, class_weights)
    if class_weights and name in ("mlp1", "mlp2"):
        weights = compute_sample_weight("balanced", y_train)
        model.fit(x_train, y_train, mlpclassifier__sample_weight=weights)
    else:
        model.fit(x_train, y_train)
    return class_scores(model, x_test, n_classes)
