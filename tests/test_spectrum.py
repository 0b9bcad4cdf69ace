"""The spectrum the transferability estimators share, against numpy's full
eigendecomposition."""

from __future__ import annotations

import numpy as np
import pytest

from medtransfer.spectrum import Spectrum


@pytest.mark.parametrize(
    ("rows", "dims", "dead", "saturated"),
    [(400, 300, 0, 0), (400, 300, 30, 0), (400, 300, 30, 2), (80, 260, 0, 0)],
)
def test_spectrum_agrees_with_a_full_eigendecomposition(rows, dims, dead, saturated):
    """The spectrum never forms its eigenvectors where it need not (tridiagonal reduction, Q
    applied in blocks of 128, T's eigenvectors only for the leading axes, solves with T for
    LogME's and H-score's sums): its eigenvalues, projections, leading axes and quadratic
    forms are numpy's, up to each axis' sign, across block boundaries, dead and saturated
    units (left out of T) and fewer rows than dimensions (T singular: its eigenvectors
    then; a null space, where single axes are arbitrary and only their span is compared)."""
    rng = np.random.default_rng(1)
    features = np.maximum(rng.standard_normal((rows, dims)) * np.linspace(3, 0.1, dims) + 1, 0)
    features[:, :dead] = 0.0
    features[:, dead : dead + saturated] = 6.0
    spectrum = Spectrum.of(features, centred=True)
    centred = features - features.mean(axis=0)
    product = centred.T @ centred
    values, vectors = np.linalg.eigh(product)
    assert spectrum.eigenvalues == pytest.approx(np.clip(values, 0, None), abs=1e-9 * values[-1])
    x = rng.standard_normal((dims, 3))
    ranked = values > 1e-9 * values[-1]
    assert np.abs(spectrum.project(x))[ranked] == pytest.approx(np.abs(vectors.T @ x)[ranked])
    null_part = np.linalg.norm(spectrum.project(x)[~ranked], axis=0)
    assert null_part == pytest.approx(np.linalg.norm((vectors.T @ x)[~ranked], axis=0))
    leading = spectrum.leading_axes(40)
    assert np.abs(leading.T @ vectors[:, ::-1][:, :40]) == pytest.approx(np.eye(40), abs=1e-8)
    assert spectrum.leading_axes(10) == pytest.approx(leading[:, :10])
    components = spectrum.principal_components(features, 40)
    assert components == pytest.approx(centred @ leading)
    shifted_rows = spectrum.principal_components(features + 1.0, 5)  # not the kept projection
    assert shifted_rows == pytest.approx(components[:, :5] + leading[:, :5].sum(axis=0))
    coordinates = spectrum.coordinates(x)
    shifted = 0.5 * np.eye(dims) + 2.0 * product
    assert coordinates.T @ spectrum.shifted_inverse(0.5, 2.0, coordinates) == pytest.approx(
        x.T @ np.linalg.solve(shifted, x)
    )
    assert coordinates[:, 0] @ spectrum.times(coordinates[:, 1]) == pytest.approx(
        x[:, 0] @ product @ x[:, 1]
    )
    pinv = np.linalg.pinv(product, rcond=1e-10, hermitian=True)
    assert spectrum.pinv_quadratic(x, 1e-10) == pytest.approx(np.diag(x.T @ pinv @ x))
