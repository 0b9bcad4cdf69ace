"""Transferability estimates and the k-NN probe per seed, from a target's cached frozen
features (extract's outputs): each seed's estimates read only its train+val rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .io import read_csv


def estimate_seeds(
    features: np.ndarray,
    outputs: dict[str, np.ndarray],
    labels: np.ndarray,
    splits: list[dict[str, Any]],
    estimators: tuple[str, ...],
    options: dict[str, str] | None = None,
) -> pd.DataFrame:
    """(seed, estimator, score, n_rows, seconds): every estimator on each seed's train+val
    rows (the test rows are never read); `options` are estimate_all's variant switches."""
    import time

    from .transferability import estimate_all

    softmax = outputs.get("source_softmax")
    rows = []
    for split in splits:
        fit = np.sort(np.concatenate([split["train"], split["val"]]))
        started = time.perf_counter()
        scores = estimate_all(
            features[fit],
            labels[fit],
            None if softmax is None else softmax[fit],
            estimators,
            seed=split["seed"],
            **(options or {}),
        )
        seconds = time.perf_counter() - started
        rows += [
            {"seed": split["seed"], "estimator": name, "score": score, "n_rows": len(fit),
             "seconds": round(seconds, 3)}
            for name, score in scores.items()
        ]  # fmt: skip
    return pd.DataFrame(rows)


def knn_seeds(
    outputs: dict[str, np.ndarray], labels: np.ndarray, splits: list[dict[str, Any]], k: int
) -> pd.DataFrame:
    """(seed, depth, layer, k, accuracy): k-NN on each frozen stage's pooled output, fitted
    on the seed's train rows, scored on its test rows."""
    from .transferability import knn_accuracy

    stages = sorted(
        (name for name in outputs if name.startswith("stage")),
        key=lambda name: int(name[5:].split("_", 1)[0]),
    )
    rows = []
    for split in splits:
        train, test = np.asarray(split["train"]), np.asarray(split["test"])
        for name in stages:
            depth, layer = name[5:].split("_", 1)
            x = outputs[name]
            accuracy = knn_accuracy(x[train], labels[train], x[test], labels[test], k)
            rows.append({"seed": split["seed"], "depth": int(depth), "layer": layer, "k": k,
                         "accuracy": accuracy})  # fmt: skip
    return pd.DataFrame(rows)


def read_estimates(paths: list[str]) -> pd.DataFrame:
    """The transferability CSVs of a grid (one per target and source), one frame."""
    frames = [read_csv(path) for path in paths]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
