"""The `split` stage: stratified, seeded train/val/test indices and balanced class weights."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .data import DataError

SPLITS = ("train", "val", "test")


def min_images_per_class(val: float, test: float) -> int:
    """Fewest images a class needs so that val and test each get at least one, train two."""
    return max(3, math.ceil(1 / val), math.ceil(1 / test))


def stratified_split(
    labels: np.ndarray, classes: list[str], seed: int, val: float, test: float, task: str = "task"
) -> dict[str, list[int]]:
    """Split every class on its own so that each split has the class's proportions."""
    if val + test >= 1:
        raise DataError(f"split: val ({val}) + test ({test}) leave no training images")
    needed = min_images_per_class(val, test)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[int]] = {s: [] for s in SPLITS}
    for k, name in enumerate(classes):
        members = np.flatnonzero(labels == k)
        if len(members) < needed:
            raise DataError(
                f"task {task}: class {name!r} has {len(members)} images; a stratified split with "
                f"val={val}, test={test} needs at least {needed} per class"
            )
        members = rng.permutation(members)
        n_test = max(1, round(len(members) * test))
        n_val = max(1, round(len(members) * val))
        parts["test"] += members[:n_test].tolist()
        parts["val"] += members[n_test : n_test + n_val].tolist()
        parts["train"] += members[n_test + n_val :].tolist()
    return {s: sorted(ix) for s, ix in parts.items()}


def official_split(
    labels: np.ndarray,
    official: list[str | None],
    classes: list[str],
    seed: int,
    val: float,
    task: str = "task",
) -> dict[str, list[int]]:
    """The dataset's own split; where it has no val part, val is drawn from train per class."""
    official_arr = np.asarray(official, dtype=object)
    parts = {s: np.flatnonzero(official_arr == s).tolist() for s in SPLITS}
    if not parts["train"] or not parts["test"]:
        raise DataError(f"task {task}: the dataset's official split has no train or no test part")
    if not parts["val"]:
        rng = np.random.default_rng(seed)
        train = np.asarray(parts["train"])
        keep, take = [], []
        for k in range(len(classes)):
            members = rng.permutation(train[labels[train] == k])
            n_val = max(1, round(len(members) * val)) if len(members) > 1 else 0
            take += members[:n_val].tolist()
            keep += members[n_val:].tolist()
        parts["train"], parts["val"] = keep, take
    for s in SPLITS:
        present = set(labels[parts[s]].tolist())
        for k, name in enumerate(classes):
            if k not in present:
                raise DataError(
                    f"task {task}: class {name!r} has no image in the official {s} split"
                )
    return {s: sorted(ix) for s, ix in parts.items()}


def balanced_class_weights(labels: np.ndarray, n_classes: int) -> list[float]:
    """n / (k * n_c) per class, as scikit-learn's 'balanced': rare classes weigh more."""
    counts = np.bincount(labels, minlength=n_classes).astype(float)
    return (len(labels) / (n_classes * np.maximum(counts, 1))).round(6).tolist()


def make_split(
    meta: dict[str, Any], seed: int, val: float, test: float, mode: str = "random"
) -> dict[str, Any]:
    """The split file's content for one task and seed."""
    labels = np.asarray(meta["labels"])
    classes, task = meta["classes"], meta["task"]
    if mode == "official":
        if meta.get("official_split") is None:
            raise DataError(
                f"task {task}: split 'official' asked for, but dataset "
                f"{meta['dataset']} has no official split"
            )
        parts = official_split(labels, meta["official_split"], classes, seed, val, task)
    else:
        parts = stratified_split(labels, classes, seed, val, test, task)
    train_labels = labels[parts["train"]]
    return {
        "task": task,
        "seed": seed,
        "mode": mode,
        **parts,
        "counts": {
            s: np.bincount(labels[parts[s]], minlength=len(classes)).tolist() for s in SPLITS
        },
        "class_weights": balanced_class_weights(train_labels, len(classes)),
    }


def subsample_train(
    split: dict[str, Any], labels: np.ndarray, fraction: float, n_classes: int
) -> dict[str, Any]:
    """The same split with only `fraction` of each class's training images (at least one);
    val and test stay as they are, so the learning curve is measured on fixed data."""
    rng = np.random.default_rng([split["seed"], round(fraction * 1_000_000)])
    train = np.asarray(split["train"])
    kept: list[int] = []
    for k in range(n_classes):
        members = train[labels[train] == k]
        if len(members):
            take = max(1, round(len(members) * fraction))
            kept += rng.permutation(members)[:take].tolist()
    kept.sort()
    return {
        **split,
        "train": kept,
        "train_fraction": fraction,
        "counts": {
            **split["counts"],
            "train": np.bincount(labels[kept], minlength=n_classes).tolist(),
        },
        "class_weights": balanced_class_weights(labels[kept], n_classes),
    }
