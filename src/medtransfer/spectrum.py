"""The eigendecomposition of FᵀF that the transferability estimators share (LogME, H-score,
GBC and N-LEEP; `medtransfer.transferability`): a reduction to tridiagonal form, read through
tridiagonal solves, T's eigenvalues and the leading axes, so that at 4,096 dimensions the
eigenvectors are formed only where they have to be."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from medtransfer.errors import EstimatorError


def _lapack_succeeded(info: int, what: str) -> None:
    if info != 0:
        raise EstimatorError(f"{what} failed (LAPACK info {info})")


def _tridiagonal_eigen(diagonal: np.ndarray, off: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (ascending) and eigenvectors of a symmetric tridiagonal matrix, by divide
    and conquer as numpy's eigh (for all of them faster here than MRRR); LAPACK's stevd
    refuses 1 x 1."""
    from scipy.linalg import lapack

    if len(diagonal) == 1:
        return diagonal.copy(), np.ones((1, 1))
    values, vectors, info = lapack.dstevd(diagonal, off)
    _lapack_succeeded(info, "the eigendecomposition of the tridiagonal form of FᵀF")
    return values, vectors


def _tridiagonal_values(diagonal: np.ndarray, off: np.ndarray) -> np.ndarray:
    """Eigenvalues (ascending) of a symmetric tridiagonal matrix, without its vectors."""
    from scipy.linalg import lapack

    if len(diagonal) <= 1:  # LAPACK's wrapper refuses an empty off-diagonal
        return diagonal.copy()
    values, info = lapack.dsterf(diagonal, off)
    _lapack_succeeded(info, "the eigenvalues of the tridiagonal form of FᵀF")
    return values


def _tridiagonal_vectors(diagonal: np.ndarray, off: np.ndarray, first: int, count: int):
    """The eigenvectors of the `count` eigenvalues from the `first` smallest on (0-based) of
    a symmetric tridiagonal matrix, ascending, by MRRR (LAPACK's stemr: O(d) a vector)."""
    from scipy.linalg import lapack

    if len(diagonal) == 1:
        return np.ones((1, count))
    found, _, vectors, info = lapack.dstemr(
        diagonal, np.append(off, 0.0), 2, 0.0, 0.0, first + 1, first + count
    )
    _lapack_succeeded(info, "the eigenvectors of the tridiagonal form of FᵀF")
    if found != count:
        raise EstimatorError(f"LAPACK's stemr found {found} of {count} eigenvectors of FᵀF")
    return vectors[:, :count]


class _Reflectors:
    """Q of a tridiagonal reduction A = Q T Qᵀ as LAPACK's sytrd leaves it (lower half):
    Q = H_1 ⋯ H_{d-1}, each H_i = I - τ_i v_i v_iᵀ. Applied in blocks (the compact WY form
    of LAPACK's larft and ormtr), so Q reaches k columns in O(d² k) without being formed."""

    BLOCK = 128

    def __init__(self, reduced: np.ndarray, scales: np.ndarray):
        self._blocks = [
            self._block(reduced, scales, start) for start in range(0, len(scales), self.BLOCK)
        ]

    def _block(self, reduced: np.ndarray, scales: np.ndarray, start: int):
        """(first row, V, T) with H_start ⋯ H_stop-1 = I - V T Vᵀ on the rows from there."""
        tau = scales[start : start + self.BLOCK]
        # v_i: one at row i + 1, sytrd's stored part below it, zero above
        v = np.tril(reduced[start + 1 :, start : start + len(tau)], -1)
        v[np.arange(len(tau)), np.arange(len(tau))] = 1.0
        inner = v.T @ v
        t = np.zeros((len(tau), len(tau)))
        for j in range(len(tau)):
            t[:j, j] = -tau[j] * (t[:j, :j] @ inner[:j, j])
            t[j, j] = tau[j]
        return start + 1, v, t

    def transpose_times(self, x: np.ndarray) -> np.ndarray:
        """Qᵀ x."""
        x = np.array(x, dtype=np.float64)
        for row, v, t in self._blocks:
            x[row:] -= v @ (t.T @ (v.T @ x[row:]))
        return x

    def times(self, x: np.ndarray) -> np.ndarray:
        """Q x."""
        x = np.array(x, dtype=np.float64)
        for row, v, t in reversed(self._blocks):
            x[row:] -= v @ (t @ (v.T @ x[row:]))
        return x


NULL_RCOND = 1e-10  # eigenvalues at most this share of the largest: FᵀF's null space


@dataclass(frozen=True)
class Spectrum:
    """The eigendecomposition V diag(λ) Vᵀ of the centred FᵀF: H-score's pinv(Cov_f), the
    PCA of GBC and N-LEEP, and LogME's uncentred FᵀF by a rank-one update. At 4,096
    dimensions it is most of the estimators' cost, so it is computed once per feature matrix
    and shared, and V is formed only where it has to be.

    FᵀF = Q T Qᵀ with T tridiagonal (LAPACK's sytrd); T's eigenvalues need no vectors
    (sterf). What the estimators read of V: GBC and N-LEEP the leading axes, which are Q
    times T's leading eigenvectors, computed alone (MRRR); LogME and H-score only sums over
    the axes of f(λ_i) (v_iᵀx)(v_iᵀy) for a few vectors x, y and f = 1/(α + βλ), 1/λ or λ,
    which are xᵀ f(FᵀF) y = (Qᵀx)ᵀ f(T) (Qᵀy): tridiagonal solves in O(d). That takes T
    non-singular; where it is not (no more rows than dimensions, units that vary together)
    T's eigenvectors W are computed after all (divide and conquer) and V = Q W applied to
    the few vectors. Columns that do not vary (dead or saturated units; all-zero ones of an
    uncentred product) are exact null axes of their own and left out of T, so they alone
    never cost that."""

    eigenvalues: np.ndarray  # ascending, clipped at 0; the silent columns' zeros first
    n: int
    mean: np.ndarray  # subtracted before the product (zeros: uncentred)
    silent: np.ndarray  # per column: exactly null in the product, left out of T
    reflectors: _Reflectors
    diagonal: np.ndarray  # T's
    off: np.ndarray  # T's
    _computed: dict = field(default_factory=dict, compare=False, repr=False)  # widest sets

    @classmethod
    def of(cls, features: np.ndarray, centred: bool) -> Spectrum:
        from scipy.linalg import blas, lapack

        mean = features.mean(axis=0) if centred else np.zeros(features.shape[1])
        constant = np.ptp(features, axis=0) == 0
        silent = constant if centred else constant & (features[0] == 0)
        rows = features - mean if centred else features
        if silent.any():
            rows = rows[:, ~silent]
        # rowsᵀ of C-ordered rows is Fortran-ordered: syrk reads it in place and writes the
        # lower half of FᵀF, all that sytrd reads
        product = blas.dsyrk(1.0, rows.T, lower=1) if rows.shape[1] else np.zeros((0, 0))
        if not np.isfinite(product).all():
            raise EstimatorError(
                f"features too large: FᵀF overflows float64 (largest |value| "
                f"{float(np.abs(features).max()):.3g})"
            )
        if len(product) == 0:  # nothing varies
            reduced, diagonal, off, scales = product, np.zeros(0), np.zeros(0), np.zeros(0)
        else:
            lwork, _ = lapack.dsytrd_lwork(len(product), lower=1)
            reduced, diagonal, off, scales, info = lapack.dsytrd(
                product, lower=1, lwork=int(lwork), overwrite_a=1
            )
            _lapack_succeeded(info, "the reduction of FᵀF to tridiagonal form")
        values = _tridiagonal_values(diagonal, off)
        eigenvalues = np.concatenate([np.zeros(int(silent.sum())), np.clip(values, 0.0, None)])
        reflectors = _Reflectors(reduced, scales)
        return cls(eigenvalues, len(features), mean, silent, reflectors, diagonal, off)

    @cached_property
    def _silent_count(self) -> int:
        """How many axes are silent columns: the first of `eigenvalues` and `coordinates`."""
        return int(self.silent.sum())

    def _t_above(self, rcond: float) -> bool:
        """Whether every eigenvalue of T exceeds `rcond` of the largest (so T solves)."""
        values = self.eigenvalues[self._silent_count :]
        return len(values) == 0 or values[0] > rcond * values[-1]

    def _reduce(self, x: np.ndarray) -> np.ndarray:
        """Qᵀ x of the varying columns' rows of x."""
        return self.reflectors.transpose_times(x[~self.silent])

    def _t_solve(self, shift: float, scale: float, x: np.ndarray) -> np.ndarray:
        """(shift I + scale T)⁻¹ x, T positive definite (LAPACK's ptsv)."""
        from scipy.linalg import lapack

        if len(self.diagonal) <= 1:  # LAPACK's wrapper refuses an empty off-diagonal
            return x / (shift + scale * self.diagonal) if len(x) else x.copy()
        *_, solution, info = lapack.dptsv(
            shift + scale * self.diagonal, scale * self.off, x.reshape(len(x), -1)
        )
        _lapack_succeeded(info, "a solve with the tridiagonal form of FᵀF")
        return solution.reshape(x.shape)

    def _t_times(self, x: np.ndarray) -> np.ndarray:
        """T x."""
        product = self.diagonal * x
        product[:-1] += self.off * x[1:]
        product[1:] += self.off * x[:-1]
        return product

    @cached_property
    def _tridiagonal_vectors(self) -> np.ndarray:
        """W, all of T's eigenvectors (computed once, where T does not solve)."""
        return _tridiagonal_eigen(self.diagonal, self.off)[1]

    def project(self, x: np.ndarray) -> np.ndarray:
        """Vᵀ x: each column of x in the eigenbasis (rows ascending as the eigenvalues)."""
        varying = self._tridiagonal_vectors.T @ self._reduce(x)
        return np.concatenate([x[self.silent], varying])

    @cached_property
    def _solves(self) -> bool:
        """Whether LogME's sums go through T (non-singular) rather than its eigenvectors."""
        return self._t_above(NULL_RCOND)

    def coordinates(self, x: np.ndarray) -> np.ndarray:
        """x in an orthonormal basis in which `shifted_inverse` and `times` apply: Vᵀx, or
        where T solves, the silent columns' rows of x above Qᵀ x."""
        if not self._solves:
            return self.project(x)
        return np.concatenate([x[self.silent], self._reduce(x)])

    def shifted_inverse(self, alpha: float, beta: float, y: np.ndarray) -> np.ndarray:
        """(αI + βFᵀF)⁻¹ in `coordinates`, α > 0."""
        if not self._solves:
            scale = alpha + beta * self.eigenvalues
            return y / (scale if y.ndim == 1 else scale[:, None])
        first = self._silent_count
        return np.concatenate([y[:first] / alpha, self._t_solve(alpha, beta, y[first:])])

    def times(self, y: np.ndarray) -> np.ndarray:
        """FᵀF in `coordinates`, of one vector."""
        if not self._solves:
            return self.eigenvalues * y
        first = self._silent_count
        return np.concatenate([np.zeros(first), self._t_times(y[first:])])

    def pinv_quadratic(self, x: np.ndarray, rcond: float) -> np.ndarray:
        """Σ_i (v_iᵀx)² / λ_i over the eigenvalues above `rcond` of the largest, per column
        of x (xᵀ pinv(FᵀF) x)."""
        if self._t_above(rcond):  # the silent axes are the only ones left out
            reduced = self._reduce(x)
            return np.sum(reduced * self._t_solve(0.0, 1.0, reduced), axis=0)
        values = self.eigenvalues
        kept = values > rcond * max(values.max(), 1e-300)
        inverse = np.where(kept, 1.0 / np.where(kept, values, 1.0), 0.0)
        return np.sum(self.project(x) ** 2 * inverse[:, None], axis=0)

    def mean_in_range(self, tolerance: float = 1e-8) -> bool:
        """Whether the mean lies where the centred features vary, to `tolerance` of its
        length. Where it does not (no more rows than dimensions, or a unit constant at a
        non-zero value, as a saturated ReLU6), LogME's rank-one update divides by α alone
        along that direction and loses every digit once α is small."""
        if self._solves:  # only the silent axes are null
            outside = self.mean[self.silent]
        else:
            along = self.project(self.mean)
            outside = along[self.eigenvalues <= NULL_RCOND * max(self.eigenvalues.max(), 1e-300)]
        return float(np.linalg.norm(outside)) <= tolerance * max(
            float(np.linalg.norm(self.mean)), 1e-300
        )

    def leading_axes(self, n: int) -> np.ndarray:
        """The `n` eigenvectors of the largest eigenvalues, largest first (d x n). The widest
        set asked for is kept: narrower ones are its first columns."""
        widest = self._computed.get("axes")
        if widest is None or widest.shape[1] < min(n, len(self.mean)):
            widest = self._computed["axes"] = self._leading_axes(n)
        return widest[:, :n]

    def _leading_axes(self, n: int) -> np.ndarray:
        size = len(self.diagonal)
        count = min(n, size)
        axes = np.zeros((len(self.mean), min(n, len(self.mean))))
        if count:
            vectors = (
                _tridiagonal_vectors(self.diagonal, self.off, size - count, count)
                if self._solves
                else self._tridiagonal_vectors[:, size - count :]  # T singular: W is needed
            )
            axes[~self.silent, :count] = self.reflectors.times(vectors[:, ::-1])
        # beyond T's axes, the silent columns' (null: any basis of it will do)
        padding = np.flatnonzero(self.silent)[: axes.shape[1] - count]
        axes[padding, count + np.arange(len(padding))] = 1.0
        return axes

    def principal_components(self, features: np.ndarray, n: int) -> np.ndarray:
        """The rows projected on the `n` leading principal axes (a centred spectrum). The
        widest projection of the same array is kept: narrower ones are its first columns."""
        kept = self._computed.get("components")
        if kept is None or kept[0] is not features or kept[1].shape[1] < min(n, len(self.mean)):
            kept = self._computed["components"] = (
                features,
                (features - self.mean) @ self.leading_axes(n),
            )
        return kept[1][:, :n]

    def components_for(self, variance: float) -> int:
        """The fewest principal axes that keep `variance` of the total variance."""
        explained = np.cumsum(self.eigenvalues[::-1]) / max(self.eigenvalues.sum(), 1e-300)
        return int(np.searchsorted(explained, variance) + 1)
