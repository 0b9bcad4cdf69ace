"""Transferability estimators: how well will a source network do on a target, from its frozen
features (and, where the source has classes of its own, its softmax) alone?

Each estimator is a pure function of the train+val rows of one seed's split (never the test
rows), written from its paper's definition; higher is better for all of them:

- LogME (You et al., ICML 2021): the log marginal evidence of a Bayesian linear model from
  features to each one-hot label column, maximised over its prior and noise precisions.
- H-score (Bao et al., ICIP 2019): trace(pinv(Cov_f) Cov_g), g the class-conditional means.
- GBC (Pándy et al., CVPR 2022): minus the summed Bhattacharyya coefficients of per-class
  diagonal Gaussians, on PCA-reduced features (64 dimensions).
- N-LEEP (Li et al., CVPR 2021): LEEP with the posteriors of a Gaussian mixture fitted on
  PCA-reduced features (80% of the variance kept) in place of a source softmax.
- LEEP (Nguyen et al., ICML 2020) and NCE (Tran et al., ICCV 2019): need the source's own
  softmax (sources trained by `pretrain`; ImageNet's 1000 classes only at 224 px).

Also the feature-reuse probes of Matsoukas et al. (CVPR 2022): linear CKA (Kornblith et al.,
ICML 2019) between two representations of the same images, and k-NN accuracy.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from medtransfer.errors import EstimatorError
from medtransfer.spectrum import Spectrum

ESTIMATORS = ("logme", "hscore", "gbc", "nleep", "leep", "nce")
GBC_DIMS = 64
GBC_VARIANCE_FLOOR = 1e-4  # the authors' max(var, 1e-4) per dimension
GBC_GAUSSIANS = ("spherical", "diagonal")
NLEEP_COVARIANCES = ("full", "diag")
NLEEP_VARIANCE = 0.8
NLEEP_COMPONENTS_PER_CLASS = 5


def _check(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    if features.ndim != 2 or len(features) != len(labels):
        raise EstimatorError(
            f"features {features.shape} and labels {labels.shape} do not pair up row by row"
        )
    if features.shape[1] == 0:
        raise EstimatorError(f"features {features.shape} have no columns")
    if len(np.unique(labels)) < 2:
        raise EstimatorError("a transferability estimate needs at least two classes")
    if not np.isfinite(features).all():
        raise EstimatorError("features contain NaN or infinite values")
    return features, labels


def _one_hot(labels: np.ndarray) -> np.ndarray:
    classes = np.unique(labels)
    return (labels[:, None] == classes[None, :]).astype(np.float64)


def _logme_column(spectrum: Spectrum, b: np.ndarray, c: np.ndarray, y_norm2: float) -> float:
    """Maximised log evidence / n of one target column, by the fixed-point updates of You
    et al. (Algorithm 1).

    LogME's model is of the uncentred features, FᵀF = CᵀC + n μμᵀ with C the centred rows:
    with A = αI + βCᵀC (shared with H-score, GBC and N-LEEP) that is A + β ccᵀ for
    c = √n μ, so each quantity of an update follows from Sherman-Morrison and the
    determinant lemma by two solves with A, without a second decomposition. `b` is FᵀY and
    `c` in the spectrum's `coordinates`."""
    n, lam, dims = spectrum.n, spectrum.eigenvalues, len(spectrum.eigenvalues)
    if not lam.any() and not c.any():
        # F = 0 (to float64's range; every unit of an untrained network dead): y = ε alone,
        # whatever α, and the evidence is p(y | β) at its maximum β = n / ||y||². The fixed
        # point would divide 0 by 0 (γ = mᵀm = 0).
        return 0.5 * math.log(n / y_norm2) - 0.5 * math.log(2 * math.pi) - 0.5

    def posterior(alpha: float, beta: float) -> tuple[float, float, float, float, float]:
        """(γ, mᵀm, ||Fm - y||², log det(αI + βFᵀF)) at α, β, for m the posterior mean."""
        u, v = spectrum.shifted_inverse(alpha, beta, np.column_stack([b, c])).T
        denom = 1.0 + beta * float(c @ v)
        m = beta * (u - beta * v * float(c @ u) / denom)
        m2 = float(m @ m)
        fm2 = float(m @ spectrum.times(m)) + float(c @ m) ** 2  # ||Fm||²
        residual = max(fm2 - 2 * float(b @ m) + y_norm2, 1e-12)
        # γ = d - α tr((αI + βFᵀF)⁻¹), summed term by term: the difference loses every
        # digit where βλ << α (features near zero, as an untrained network's can be)
        d = alpha + beta * lam
        gamma = float(np.sum(beta * lam / d)) + alpha * beta * float(v @ v) / denom
        logdet = float(np.sum(np.log(d))) + math.log(denom)
        return gamma, m2, residual, logdet, denom

    alpha, beta = 1.0, 1.0
    for _ in range(1000):
        gamma, m2, residual, _, _ = posterior(alpha, beta)
        new_alpha, new_beta = gamma / max(m2, 1e-12), (n - gamma) / residual
        if not (0 < new_alpha < math.inf and 0 < new_beta < math.inf):
            raise EstimatorError(
                f"logme: no maximum of the evidence (α {new_alpha:.3g}, β {new_beta:.3g}): "
                "features at the edge of float64's range?"
            )
        done = abs(new_alpha - alpha) / alpha < 1e-8 and abs(new_beta - beta) / beta < 1e-8
        alpha, beta = new_alpha, new_beta
        if done:
            break
    _, m2, residual, logdet, _ = posterior(alpha, beta)
    evidence = (
        n / 2 * math.log(beta)
        + dims / 2 * math.log(alpha)
        - n / 2 * math.log(2 * math.pi)
        - beta / 2 * residual
        - alpha / 2 * m2
        - 0.5 * logdet
    )
    return evidence / n


def logme(features: np.ndarray, labels: np.ndarray, spectrum: Spectrum | None = None) -> float:
    """LogME (You et al., "LogME: Practical Assessment of Pre-trained Models for Transfer
    Learning", ICML 2021): the mean over one-hot label columns of the maximum over α, β of
    log p(y | F, α, β) / n, for y = Fw + ε, w ~ N(0, α⁻¹I), ε ~ N(0, β⁻¹I) (uncentred F,
    as the authors'; computed from the centred spectrum the other estimators share)."""
    features, labels = _check(features, labels)
    spectrum = spectrum or Spectrum.of(features, centred=True)
    if spectrum.mean_in_range():
        c = math.sqrt(spectrum.n) * spectrum.coordinates(spectrum.mean)
    else:  # the uncentred FᵀF itself, as before the update existed; then c = 0
        spectrum = Spectrum.of(features, centred=False)
        c = np.zeros(features.shape[1])
    targets = _one_hot(labels)
    projected = spectrum.coordinates(features.T @ targets)
    return float(
        np.mean(
            [
                _logme_column(spectrum, projected[:, k], c, float(targets[:, k] @ targets[:, k]))
                for k in range(targets.shape[1])
            ]
        )
    )


def hscore(
    features: np.ndarray,
    labels: np.ndarray,
    spectrum: Spectrum | None = None,
    rcond: float = 1e-10,
) -> float:
    """H-score (Bao et al., "An Information-Theoretic Approach to Transferability in Task
    Transfer Learning", ICIP 2019) in the authors' form trace(pinv(Cov_f) · Cov_g), where g
    replaces each row by its class's mean feature (both covariances as np.cov, n - 1).

    With no more rows than feature dimensions (the centred rows spanning their whole
    space) it equals classes - 1 for any features: pinv(Cov_f) Cov_g is then a projection.
    The demo's 32-px grid is in that regime; the paper-scale one (thousands of rows) is not.

    pinv(Cov_f) from the eigendecomposition of the centred FᵀF: eigenvalues below `rcond`
    of the largest count as zero (the authors' 1e-15 would keep rounding noise of a
    4,096-d matrix; dead ReLU units give exact zeros)."""
    features, labels = _check(features, labels)
    n = len(features)
    spectrum = spectrum or Spectrum.of(features, centred=True)
    classes, counts = np.unique(labels, return_counts=True)
    deviations = np.stack([features[labels == c].mean(axis=0) for c in classes]) - spectrum.mean
    # pinv(Cov_f) = (n - 1) pinv(CᵀC), and the same eigenvalues are cut
    quadratic = (n - 1) * spectrum.pinv_quadratic(deviations.T, rcond)
    return float(np.sum(counts / (n - 1) * quadratic))


def gbc(
    features: np.ndarray,
    labels: np.ndarray,
    spectrum: Spectrum | None = None,
    dims: int = GBC_DIMS,
    gaussian: str = "spherical",
) -> float:
    """GBC (Pándy et al., "Transferability Estimation using Bhattacharyya Class
    Separability", CVPR 2022): features reduced by PCA to `dims`, a Gaussian per class,
    GBC = -Σ_{i≠j} exp(-D_B(i, j)) with the Bhattacharyya distance
    D_B = ⅛ Δμᵀ Σ⁻¹ Δμ + ½ ln(det Σ / √(det Σ_i det Σ_j)), Σ = (Σ_i + Σ_j) / 2.
    `spherical` (the authors' source-selection setting): Σ_i = σ_i² I with σ_i² the class's
    mean variance over the dimensions; `diagonal`: one variance per dimension. Each
    dimension's variance is at least GBC_VARIANCE_FLOOR, as in the authors' code."""
    if gaussian not in GBC_GAUSSIANS:
        raise EstimatorError(f"gbc: unknown gaussian {gaussian!r}; known: {GBC_GAUSSIANS}")
    features, labels = _check(features, labels)
    spectrum = spectrum or Spectrum.of(features, centred=True)
    reduced = spectrum.principal_components(features, dims)
    classes = np.unique(labels)
    means = np.stack([reduced[labels == c].mean(axis=0) for c in classes])
    variances = np.maximum(
        np.stack([reduced[labels == c].var(axis=0) for c in classes]), GBC_VARIANCE_FLOOR
    )
    if gaussian == "spherical":
        variances = np.broadcast_to(variances.mean(axis=1, keepdims=True), variances.shape)
    total = 0.0
    for i in range(len(classes)):
        for j in range(len(classes)):
            if i == j:
                continue
            pooled = (variances[i] + variances[j]) / 2
            distance = np.sum((means[i] - means[j]) ** 2 / pooled) / 8 + 0.5 * np.sum(
                np.log(pooled) - 0.5 * (np.log(variances[i]) + np.log(variances[j]))
            )
            total += math.exp(-distance)
    return -total


def leep(source_softmax: np.ndarray, labels: np.ndarray) -> float:
    """LEEP (Nguyen et al., "LEEP: A New Measure to Evaluate Transferability of Learned
    Representations", ICML 2020): the mean log-likelihood of the "expected empirical
    predictor" Σ_z P̂(y|z) θ_z(x), P̂ from the joint of target labels and source softmax."""
    theta = np.asarray(source_softmax, dtype=np.float64)
    labels = np.asarray(labels)
    if theta.ndim != 2 or len(theta) != len(labels):
        raise EstimatorError(f"softmax {theta.shape} and labels {labels.shape} do not pair up")
    targets = _one_hot(labels)
    joint = targets.T @ theta / len(labels)  # P̂(y, z)
    conditional = joint / np.clip(joint.sum(axis=0, keepdims=True), 1e-300, None)  # P̂(y|z)
    expected = theta @ conditional.T  # n x classes
    picked = expected[np.arange(len(labels)), np.searchsorted(np.unique(labels), labels)]
    return float(np.mean(np.log(np.clip(picked, 1e-300, None))))


def nce(source_softmax: np.ndarray, labels: np.ndarray) -> float:
    """NCE (Tran et al., "Transferability and Hardness of Supervised Classification Tasks",
    ICCV 2019): -H(Y|Z), Z the source's hard prediction argmax θ(x)."""
    theta = np.asarray(source_softmax)
    labels = np.asarray(labels)
    z = theta.argmax(axis=1)
    _, y = np.unique(labels, return_inverse=True)
    joint = np.zeros((y.max() + 1, theta.shape[1]))
    np.add.at(joint, (y, z), 1.0)
    joint /= len(labels)
    marginal = joint.sum(axis=0, keepdims=True)
    nonzero = joint > 0
    ratio = joint[nonzero] / np.broadcast_to(marginal, joint.shape)[nonzero]
    return float(np.sum(joint[nonzero] * np.log(ratio)))


def nleep(
    features: np.ndarray,
    labels: np.ndarray,
    spectrum: Spectrum | None = None,
    seed: int = 0,
    variance: float = NLEEP_VARIANCE,
    per_class: int = NLEEP_COMPONENTS_PER_CLASS,
    covariance: str = "full",
) -> float:
    """N-LEEP (Li et al., "Ranking Neural Checkpoints", CVPR 2021): LEEP with the posteriors
    of a Gaussian mixture (`per_class` components per target class) fitted on the features
    reduced by PCA to `variance` of their variance. `full` covariances as both reference
    implementations; `diag` is faster at hundreds of components (and differs: -0.246 vs
    -0.190 on one draw). The mixture is seeded, so the score is reproducible."""
    from sklearn.mixture import GaussianMixture

    if covariance not in NLEEP_COVARIANCES:
        raise EstimatorError(
            f"nleep: unknown covariance {covariance!r}; known: {NLEEP_COVARIANCES}"
        )
    features, labels = _check(features, labels)
    spectrum = spectrum or Spectrum.of(features, centred=True)
    reduced = spectrum.principal_components(features, spectrum.components_for(variance))
    n_classes = len(np.unique(labels))
    components = max(1, min(per_class * n_classes, len(features) // 2))
    mixture = GaussianMixture(
        components, covariance_type=covariance, reg_covar=1e-6, random_state=seed, max_iter=200
    ).fit(reduced)
    return leep(mixture.predict_proba(reduced), labels)


def estimate_all(
    features: np.ndarray,
    labels: np.ndarray,
    source_softmax: np.ndarray | None = None,
    estimators: tuple[str, ...] = ESTIMATORS,
    seed: int = 0,
    nleep_covariance: str = "full",
    gbc_gaussian: str = "spherical",
) -> dict[str, float | None]:
    """Every requested estimator on the same rows; LEEP and NCE are None without a source
    softmax. LogME, H-score, GBC and N-LEEP share one eigendecomposition (of the centred
    features)."""
    unknown = sorted(set(estimators) - set(ESTIMATORS))
    if unknown:
        raise EstimatorError(f"unknown estimator(s) {', '.join(unknown)}; known: {ESTIMATORS}")
    features, labels = _check(features, labels)
    uses_spectrum = {"logme", "hscore", "gbc", "nleep"} & set(estimators)
    centred = Spectrum.of(features, centred=True) if uses_spectrum else None
    if centred is not None and {"gbc", "nleep"} <= set(estimators):
        # N-LEEP's components first: GBC's are their first columns, one projection for both
        centred.principal_components(
            features, max(GBC_DIMS, centred.components_for(NLEEP_VARIANCE))
        )
    table: dict[str, Callable[[], float | None]] = {
        "logme": lambda: logme(features, labels, centred),
        "hscore": lambda: hscore(features, labels, centred),
        "gbc": lambda: gbc(features, labels, centred, gaussian=gbc_gaussian),
        "nleep": lambda: nleep(features, labels, centred, seed, covariance=nleep_covariance),
        "leep": lambda: None if source_softmax is None else leep(source_softmax, labels),
        "nce": lambda: None if source_softmax is None else nce(source_softmax, labels),
    }
    return {name: table[name]() for name in estimators}


# Feature-reuse probes


def gram(activations: np.ndarray) -> np.ndarray:
    """The linear kernel XXᵀ of flattened activations (n x n): CKA needs only this, so a
    network's activations at 224 px never have to be kept."""
    flat = np.asarray(activations, dtype=np.float64).reshape(len(activations), -1)
    return flat @ flat.T


CKA_ESTIMATOR = "debiased linear CKA (unbiased HSIC, Song et al. 2012)"


def unbiased_hsic(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741 (the papers' names)
    """The unbiased HSIC estimator of Song et al. (2012, JMLR 13, "Feature selection via
    dependence maximization"), from two Gram matrices of the same n >= 4 images."""
    n = len(k)
    kt, lt = k.copy(), l.copy()
    np.fill_diagonal(kt, 0.0)
    np.fill_diagonal(lt, 0.0)
    ones_k, ones_l = kt.sum(axis=0), lt.sum(axis=0)  # 1ᵀK̃ and 1ᵀL̃
    value = (
        float(np.sum(kt * lt))
        + float(ones_k.sum()) * float(ones_l.sum()) / ((n - 1) * (n - 2))
        - 2.0 * float(ones_k @ ones_l) / (n - 2)
    )
    return value / (n * (n - 3))


def cka(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741 (the papers' names)
    """Debiased linear CKA from two Gram matrices of the same images: HSIC₁(K, L) /
    √(HSIC₁(K, K) HSIC₁(L, L)) with Song et al.'s unbiased HSIC, as Nguyen et al. (ICLR 2021,
    "Do wide and deep networks learn the same things?") use it. The plain (biased) CKA of
    Kornblith et al. (ICML 2019) is near 1 for two independent random representations once
    the features outnumber the images (0.97 at 128 x 4,096); this one is near 0 there, and
    still 1 for identical representations and invariant to orthogonal transforms and
    isotropic scaling."""
    if len(k) < 4:
        return float("nan")
    denominator = unbiased_hsic(k, k) * unbiased_hsic(l, l)
    return unbiased_hsic(k, l) / math.sqrt(denominator) if denominator > 0 else float("nan")


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    return cka(gram(x), gram(y))


def knn_accuracy(
    train: np.ndarray, train_labels: np.ndarray, test: np.ndarray, test_labels: np.ndarray, k: int
) -> float:
    """Accuracy of a k-nearest-neighbour classifier (Euclidean, on standardised features)."""
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), KNeighborsClassifier(min(k, len(train))))
    model.fit(train, train_labels)
    return float(np.mean(model.predict(test) == np.asarray(test_labels)))


def probe_rows(test_rows: np.ndarray, n: int) -> np.ndarray:
    """A fixed sample (independent of the run's seed) of at most n test rows, in order."""
    test_rows = np.asarray(test_rows)
    chosen = np.random.default_rng(0).choice(len(test_rows), min(n, len(test_rows)), replace=False)
    return np.sort(test_rows[chosen])


def cka_rows(
    stages: list[str], before: list[np.ndarray], after: list[np.ndarray]
) -> list[dict[str, object]]:
    """Debiased linear CKA of each stage's output before and after fine-tuning, by depth."""
    return [
        {
            "depth": depth,
            "layer": layer,
            "cka": cka(old, new),
            "n_images": len(old),
            "estimator": CKA_ESTIMATOR,
        }
        for depth, (layer, old, new) in enumerate(zip(stages, before, after, strict=True), start=1)
    ]
