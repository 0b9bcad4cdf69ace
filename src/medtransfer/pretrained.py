"""Sources pretrained elsewhere (the config's `pretrained:` section): a weights file checked
against its checksum and, shape by shape, its architecture (models.pretrained_network builds
the source network from it).

Three kinds of file are read:
- Keras 3 weights (`.weights.h5`): stored per layer under names Keras derives from each
  layer's class in model order, so the network is built first and the names follow it;
- a Keras-applications-style `.h5` (Keras 2's format, RadImageNet's files): stored under
  layer names, matched by name;
- a whole `.keras` model, loaded with safe_mode (no code from the file runs).

Every shape is compared before any weight is set: a file made for another network fails
with the first layer that does not fit and both shapes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import h5py
import keras
import numpy as np


class WeightsMismatch(ValueError):
    """A weights file that does not fit the network it was declared for."""


def check_sha256(path: str | Path, expected: str | None) -> None:
    if not expected:
        return
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != expected.lower():
        raise WeightsMismatch(
            f"{path}: sha256 is {digest.hexdigest()}, the config's pretrained entry expects "
            f"{expected.lower()} (a different or damaged file)"
        )


def set_checked_weights(
    model: keras.Model, weights: dict[str, list[np.ndarray]], path: str | Path
) -> None:
    """Set each layer's weights, after checking that every shape fits (a mismatch names the
    first layer and both shapes)."""
    for layer in model.layers:
        if not layer.weights:
            continue
        given = weights.get(layer.name)
        if given is None:
            raise WeightsMismatch(f"{path}: no weights for layer {layer.name}")
        if len(given) != len(layer.weights):
            raise WeightsMismatch(
                f"{path}: layer {layer.name} has {len(layer.weights)} weights in the network "
                f"but {len(given)} in the file"
            )
        for variable, value in zip(layer.weights, given, strict=True):
            if tuple(variable.shape) != value.shape:
                raise WeightsMismatch(
                    f"{path}: layer {layer.name}'s {variable.name} has shape "
                    f"{tuple(variable.shape)} in the network but {value.shape} in the file"
                )
    for layer in model.layers:
        if layer.weights:
            layer.set_weights(weights[layer.name])


def keras3_weights(path: str | Path, model: keras.Model) -> dict[str, list[np.ndarray]]:
    """Layer name -> arrays of a Keras 3 `.weights.h5` file, for the layers of `model`.

    Keras stores a model's layers under their class name in snake case, numbered from the
    second of a class on (`conv2d`, `conv2d_1`, ...), in the model's layer order."""
    from keras.src.utils.naming import to_snake_case

    found, seen = {}, {}
    with h5py.File(path, "r") as handle:
        stored = handle.get("layers")
        if stored is None:
            raise WeightsMismatch(f"{path}: not a Keras 3 weights file (no 'layers' group)")
        for layer in model.layers:
            kind = to_snake_case(type(layer).__name__)
            seen[kind] = seen.get(kind, -1) + 1
            key = kind if seen[kind] == 0 else f"{kind}_{seen[kind]}"
            variables = stored.get(f"{key}/vars")
            if variables is not None and len(variables):
                found[layer.name] = [variables[str(i)][()] for i in range(len(variables))]
    return found


def legacy_h5_weights(path: str | Path) -> dict[str, list[np.ndarray]]:
    """Layer name -> arrays of a Keras 2 / Keras-applications `.h5` weights file."""
    with h5py.File(path, "r") as handle:
        group = handle["model_weights"] if "model_weights" in handle else handle
        if "layer_names" not in group.attrs:
            raise WeightsMismatch(f"{path}: not a Keras .h5 weights file (no layer_names)")
        found = {}
        for raw in group.attrs["layer_names"]:
            name = raw.decode() if isinstance(raw, bytes) else str(raw)
            names = group[name].attrs.get("weight_names", [])
            arrays = [group[name][w.decode() if isinstance(w, bytes) else w][()] for w in names]
            if arrays:
                found[name] = arrays
    return found
