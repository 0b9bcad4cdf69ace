"""Classifiers on features (the paper's linear one-vs-rest SVM and Pal's alternatives) and on
raw pixels (Patel's baselines). Every estimator gets the run's seed, and by default balanced
class weights (n / (k * n_c) per class, as the networks' loss): without them a classifier on
an imbalanced target (ISIC: 398 benign, 159 malignant) leans to the majority class."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils.class_weight import compute_sample_weight

GRAM_LIMIT = 15000  # training rows up to which the SVMs share one precomputed Gram matrix


class LinearSvmOneVsRest(ClassifierMixin, BaseEstimator):
    """The original study's classifier, `OneVsRestClassifier(SVC(kernel="linear"))`, solved to
    convergence: per class a binary soft-margin SVM, hinge loss, cost C, an unpenalised
    intercept, on the raw (unscaled) features. libsvm's SMO stops when the dual's KKT
    violation is below `tol` (no iteration cap); the classes share one Gram matrix X Xᵀ (up to
    GRAM_LIMIT training rows; beyond, libsvm computes kernel rows as it needs them, the same
    objective at more time and less memory). The weight vector is read back from the dual
    (w = Σ α_i y_i x_i), so scoring is one matrix product. Balanced class weights scale C per
    training row by its own class's weight n / (k * n_c) in every binary problem.

    Platt's probabilities (the original `probability=True`) are left out: a monotone map of
    each class's margin, so the one-vs-rest AUC is the same (see benchmarks/)."""

    def __init__(self, C: float = 1.0, class_weight: str | None = "balanced", tol: float = 1e-3):
        self.C = C
        self.class_weight = class_weight
        self.tol = tol

    def fit(self, x: np.ndarray, y: np.ndarray) -> LinearSvmOneVsRest:
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        weights = compute_sample_weight(self.class_weight, y) if self.class_weight else None
        shared = x @ x.T if len(x) <= GRAM_LIMIT else None
        positives = self.classes_[1:] if len(self.classes_) == 2 else self.classes_
        coefs, intercepts, iterations = [], [], []
        for positive in positives:
            svm = SVC(
                kernel="linear" if shared is None else "precomputed",
                C=self.C,
                tol=self.tol,
                max_iter=-1,
                cache_size=1000,
            )
            svm.fit(x if shared is None else shared, (y == positive).astype(int), weights)
            coefs.append(svm.dual_coef_[0] @ x[svm.support_])
            intercepts.append(svm.intercept_[0])
            iterations.append(int(svm.n_iter_[0]))
        self.coef_, self.intercept_ = np.array(coefs), np.array(intercepts)
        self.n_iter_ = iterations
        return self

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        """(n, k) margins, or (n,) for two classes: positive means the second class."""
        margins = np.asarray(x, dtype=np.float64) @ self.coef_.T + self.intercept_
        return margins[:, 0] if len(self.classes_) == 2 else margins

    def predict(self, x: np.ndarray) -> np.ndarray:
        margins = self.decision_function(x)
        if margins.ndim == 1:
            return self.classes_[(margins > 0).astype(int)]
        return self.classes_[margins.argmax(axis=1)]


SVM_FEATURES = ("standardised", "raw")


def make_classifier(
    name: str,
    seed: int,
    svm_c: float = 1.0,
    threads: int = 1,
    class_weights: bool = True,
    svm_features: str = "raw",
) -> ClassifierMixin:
    """The SVM is LinearSvmOneVsRest (the original study's objective, solved to convergence),
    on the raw features or on features standardised with the training rows' mean and sd;
    the others are scikit-learn's with the run's seed. The MLPs take no class_weight;
    `fit_and_score` gives them the same weights per sample."""
    weight = "balanced" if class_weights else None
    if name == "svm":
        svm = LinearSvmOneVsRest(C=svm_c, class_weight=weight)
        return make_pipeline(StandardScaler(), svm) if svm_features == "standardised" else svm
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
    margins = hasattr(model, "decision_function")
    if margins:
        scores = model.decision_function(x)
        if scores.ndim == 1:  # binary: one margin, positive means class 1
            scores = np.column_stack([-scores, scores])
    else:
        scores = model.predict_proba(x)
    present = model.classes_
    if len(present) != n_classes:  # a class absent from train gets the lowest score
        lowest = scores.min() - 1.0 if margins else 0.0  # probabilities stay probabilities
        full = np.full((len(x), n_classes), lowest)
        full[:, present] = scores
        scores = full
    return np.asarray(scores, dtype=np.float64)


# Classifiers whose scores are class probabilities (predict_proba), and the network's own
# softmax ('head'); the SVM and logistic regression give margins (decision_function).
PROBABILISTIC = frozenset({"head", "mlp1", "mlp2", "dt", "rf"})


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
    svm_features: str = "raw",
) -> np.ndarray:
    model = make_classifier(name, seed, svm_c, threads, class_weights, svm_features)
    if class_weights and name in ("mlp1", "mlp2"):
        weights = compute_sample_weight("balanced", y_train)
        model.fit(x_train, y_train, mlpclassifier__sample_weight=weights)
    else:
        model.fit(x_train, y_train)
    return class_scores(model, x_test, n_classes)
