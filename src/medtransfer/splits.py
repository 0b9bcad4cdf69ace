"""The `split` stage: seeded train/val/test indices that keep each group of images (patient,
lesion, original photo, duplicates) in one split, per-class proportions as well as the groups
allow, the leakage that remains counted, and balanced class weights."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .duplicates import KIND_EXACT, KIND_NEAR
from .errors import DataError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


def merge_groups(keys: list[str | None], pairs: np.ndarray) -> np.ndarray:
    """Group ids (0..g-1) of n images: images with one configured key share a group, and so do
    the two images of every pair (union-find); an image without key or pair is its own group."""
    n = len(keys)
    parent = np.arange(n)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        ri, rj = root(i), root(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)

    first_of: dict[str, int] = {}
    for i, key in enumerate(keys):
        if key is not None:
            union(i, first_of.setdefault(key, i))
    for i, j in np.asarray(pairs, dtype=np.int64).reshape(-1, 2):
        union(int(i), int(j))
    roots = np.array([root(i) for i in range(n)], dtype=np.int64)
    return np.unique(roots, return_inverse=True)[1]


SPLIT_PAIRS = (("train", "test"), ("val", "test"), ("train", "val"))


def crossings(split_of: np.ndarray, a: np.ndarray, b: np.ndarray) -> dict[str, int]:
    """How many pairs (a[i], b[i]) have their two images in each pair of different splits;
    positions in no split (left out of the task's split) are ignored."""
    sa, sb = split_of[a], split_of[b]
    return {
        f"{x}-{y}": int(np.sum(((sa == x) & (sb == y)) | ((sa == y) & (sb == x))))
        for x, y in SPLIT_PAIRS
    }


def min_images_per_class(val: float, test: float) -> int:
    """Fewest images a class needs so that val and test each get at least one, train two."""
    return max(3, math.ceil(1 / val), math.ceil(1 / test))


def official_split(
    labels: np.ndarray,
    official: list[str | None],
    classes: list[str],
    seed: int,
    val: float,
    task: str = "task",
    groups: np.ndarray | None = None,
) -> dict[str, list[int]]:
    """The dataset's own split; where it has no val part, val is drawn from train: whole
    groups, in random order, until each class has its share."""
    official_arr = np.asarray(official, dtype=object)
    parts = {s: np.flatnonzero(official_arr == s).tolist() for s in SPLITS}
    if not parts["train"] or not parts["test"]:
        raise DataError(f"task {task}: the dataset's official split has no train or no test part")
    if not parts["val"]:
        parts["train"], parts["val"] = _val_from_train(
            labels, np.asarray(parts["train"]), groups, len(classes), seed, val
        )
    for s in SPLITS:
        present = set(labels[parts[s]].tolist())
        for k, name in enumerate(classes):
            if k not in present:
                raise DataError(
                    f"task {task}: class {name!r} has no image in the official {s} split"
                )
    return {s: sorted(ix) for s, ix in parts.items()}


def _val_from_train(
    labels: np.ndarray,
    train: np.ndarray,
    groups: np.ndarray | None,
    n_classes: int,
    seed: int,
    val: float,
) -> tuple[list[int], list[int]]:
    groups = np.arange(len(labels)) if groups is None else groups
    wanted = [max(1, round(np.sum(labels[train] == k) * val)) for k in range(n_classes)]
    taken = [0] * n_classes
    rng = np.random.default_rng(seed)
    _, inverse = np.unique(groups[train], return_inverse=True)
    members_of = np.split(np.argsort(inverse, kind="stable"), np.cumsum(np.bincount(inverse))[:-1])
    class_sizes = np.bincount(labels[train], minlength=n_classes)
    in_val = np.zeros(len(train), dtype=bool)
    for g in rng.permutation(len(members_of)):
        members = members_of[g]
        k = int(np.bincount(labels[train[members]], minlength=n_classes).argmax())
        if taken[k] < wanted[k] and len(members) < class_sizes[k]:
            in_val[members] = True
            taken[k] += len(members)
    return train[~in_val].tolist(), train[in_val].tolist()


def balanced_class_weights(labels: np.ndarray, n_classes: int) -> list[float]:
    """n / (k * n_c) per class, as scikit-learn's 'balanced': rare classes weigh more."""
    counts = np.bincount(labels, minlength=n_classes).astype(float)
    return (len(labels) / (n_classes * np.maximum(counts, 1))).round(6).tolist()


@dataclass
class Duplicates:
    """A task's duplicate pairs (positions a < b in the task) and their kind, from the audit."""

    a: np.ndarray
    b: np.ndarray
    kind: np.ndarray

    @classmethod
    def none(cls) -> Duplicates:
        empty = np.empty(0, np.int64)
        return cls(empty, empty, np.empty(0, object))

    @classmethod
    def from_table(cls, table: Any) -> Duplicates:
        return cls(
            table["a"].to_numpy(np.int64),
            table["b"].to_numpy(np.int64),
            table["kind"].to_numpy(object),
        )

    def of_kind(self, *kinds: str) -> np.ndarray:
        chosen = np.isin(self.kind, kinds)
        return np.column_stack([self.a[chosen], self.b[chosen]])


def task_groups(meta: dict[str, Any], duplicates: Duplicates, merge_near: bool) -> np.ndarray:
    """Group id of each image: its configured group (patient, lesion, photo), merged with every
    image it duplicates exactly (always) or nearly (with audit.merge_near)."""
    keys = meta.get("groups") or [None] * len(meta["labels"])
    kinds = (KIND_EXACT, KIND_NEAR) if merge_near else (KIND_EXACT,)
    return merge_groups(keys, duplicates.of_kind(*kinds))


def make_split(
    meta: dict[str, Any],
    seed: int,
    val: float,
    test: float,
    mode: str = "random",
    duplicates: Duplicates | None = None,
    merge_near: bool = True,
    on_leak: str = "error",
    size_tolerance: float = 0.1,
) -> dict[str, Any]:
    """The split file's content for one task and seed: no group in two splits (random mode),
    the leakage that remains counted, `on_leak` applied to train-test leakage, the realised
    fractions of images and a warning where a split's share drifts by more than
    `size_tolerance` from its request (groups too large to place evenly)."""
    duplicates = duplicates or Duplicates.none()
    labels = np.asarray(meta["labels"])
    classes, task = meta["classes"], meta["task"]
    groups = task_groups(meta, duplicates, merge_near)
    if mode == "official":
        if meta.get("official_split") is None:
            raise DataError(
                f"task {task}: split 'official' asked for, but dataset "
                f"{meta['dataset']} has no official split"
            )
        parts = official_split(labels, meta["official_split"], classes, seed, val, task, groups)
    else:
        parts = grouped_split(labels, groups, classes, seed, val, test, task)
    split_of = np.full(len(labels), "", dtype=object)
    for s in SPLITS:
        split_of[parts[s]] = s
    leakage = leakage_counts(meta, split_of, groups, duplicates)
    _apply_leak_policy(task, seed, mode, leakage, on_leak)
    train_labels = labels[parts["train"]]
    fractions = realised_fractions(parts, labels, len(classes))
    drift = size_drift(fractions, val, test) if mode == "random" else 0.0
    if drift > size_tolerance:
        log.warning(
            "task %s, seed %d: the groups allow only a split of %s of the images (asked: "
            "train %.2f, val %.2f, test %.2f; drift %.2f > split.size_tolerance %.2f): the "
            "largest groups hold %s images",
            task,
            seed,
            ", ".join(f"{s} {f:.2f}" for s, f in fractions["all"].items()),
            1 - val - test,
            val,
            test,
            drift,
            size_tolerance,
            _sizes_text(np.bincount(groups), shown=3),
        )
    return {
        "task": task,
        "seed": seed,
        "mode": mode,
        **parts,
        "counts": {
            s: np.bincount(labels[parts[s]], minlength=len(classes)).tolist() for s in SPLITS
        },
        "groups": {s: len(np.unique(groups[parts[s]])) for s in SPLITS},
        "n_groups": len(np.unique(groups)),
        "merge_near": merge_near,
        "fractions": fractions,
        "size_drift": round(drift, 4),
        "size_warning": bool(drift > size_tolerance),
        "leakage": leakage,
        "class_weights": balanced_class_weights(train_labels, len(classes)),
    }


def grouped_split(
    labels: np.ndarray,
    groups: np.ndarray,
    classes: list[str],
    seed: int,
    val: float,
    test: float,
    task: str = "task",
) -> dict[str, list[int]]:
    """Split whole groups so that each split gets about its share of every class's images.

    Groups too large to be placed freely (more images than their class's val share) go
    first, largest first, each to the split where it leaves the per-class image counts
    nearest their targets (where it overshoots least); the other groups follow in random
    order by the same rule, which stratifies exactly where every group is one image. Then
    each split that lacks a class takes the smallest group of that class from the split with
    the most of it, so that every split sees every class.
    """
    if val + test >= 1:
        raise DataError(f"split: val ({val}) + test ({test}) leave no training images")
    n_classes = len(classes)
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    composition = np.zeros((n_groups, n_classes))
    np.add.at(composition, (groups, labels), 1)
    majority = composition.argmax(axis=1)
    sizes = composition.sum(axis=1)
    needed = min_images_per_class(val, test)
    for k, name in enumerate(classes):
        of_class = np.flatnonzero(majority == k)
        if len(of_class) < needed:
            raise DataError(
                f"task {task}: class {name!r} has {len(of_class)} group(s) of images "
                f"({int(composition[:, k].sum())} images; group sizes "
                f"{_sizes_text(sizes[of_class])}); a split with val={val}, test={test} that "
                "keeps each group (patient, lesion, photo, duplicate) in one split needs at "
                f"least {needed} groups per class"
            )
    fractions = np.array([1 - val - test, val, test])  # in SPLITS order
    wanted = fractions[:, None] * composition.sum(axis=0)[None, :]
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(n_groups)
    large = sizes[shuffled] > wanted[1, majority[shuffled]]
    order = np.concatenate(
        [shuffled[large][np.argsort(-sizes[shuffled[large]], kind="stable")], shuffled[~large]]
    )
    filled = np.zeros_like(wanted)
    assigned = np.full(n_groups, -1)
    for g in order:
        best = _least_deviation(filled, wanted, composition[g])
        assigned[g] = best
        filled[best] += composition[g]
    _give_every_split_every_class(assigned, majority, sizes, n_classes)
    split_of_image = assigned[groups]
    return {s: np.flatnonzero(split_of_image == i).tolist() for i, s in enumerate(SPLITS)}


def _sizes_text(sizes: np.ndarray, shown: int = 10) -> str:
    ordered = sorted((int(n) for n in sizes), reverse=True)
    more = f", … ({len(ordered) - shown} more)" if len(ordered) > shown else ""
    return ", ".join(map(str, ordered[:shown])) + more


def _least_deviation(filled: np.ndarray, wanted: np.ndarray, group: np.ndarray) -> int:
    """The split whose per-class counts move least away from (most towards) their targets
    when the group joins it; ties go to the split with the largest unfilled share."""
    before = np.abs(filled - wanted).sum(axis=1)
    after = np.abs(filled + group - wanted).sum(axis=1)
    unfilled = ((wanted - filled) / np.maximum(wanted, 1e-9)) @ group
    return int(np.lexsort((-unfilled, after - before))[0])


def _give_every_split_every_class(
    assigned: np.ndarray, majority: np.ndarray, sizes: np.ndarray, n_classes: int
) -> None:
    for k in range(n_classes):
        for split_index in range(len(SPLITS)):
            of_class = majority == k
            if np.any(of_class & (assigned == split_index)):
                continue
            counts = np.bincount(assigned[of_class], minlength=len(SPLITS))
            donor = int(np.argmax(counts))  # holds >= 2 of the class's >= 3 groups
            candidates = np.flatnonzero(of_class & (assigned == donor))
            assigned[candidates[np.argmin(sizes[candidates])]] = split_index


def realised_fractions(parts: dict[str, list[int]], labels: np.ndarray, n_classes: int) -> dict:
    """Each split's share of all images and of each class's images."""
    counts = np.array([np.bincount(labels[parts[s]], minlength=n_classes) for s in SPLITS])
    per_class = counts / np.maximum(counts.sum(axis=0), 1)
    return {
        "all": dict(zip(SPLITS, (counts.sum(axis=1) / max(counts.sum(), 1)).round(4).tolist(),
                        strict=True)),
        "per_class": {s: per_class[i].round(4).tolist() for i, s in enumerate(SPLITS)},
    }  # fmt: skip


def size_drift(fractions: dict, val: float, test: float) -> float:
    """The largest absolute gap between a split's share of all images and its request."""
    requested = dict(zip(SPLITS, (1 - val - test, val, test), strict=True))
    return max(abs(fractions["all"][s] - requested[s]) for s in SPLITS)


def leakage_counts(
    meta: dict[str, Any], split_of: np.ndarray, groups: np.ndarray, duplicates: Duplicates
) -> dict[str, Any]:
    """Pairs of images tied together (one configured group; exact or near duplicates) that
    sit in two different splits, per pair of splits; plus examples of the groups that cross."""
    keys = meta.get("groups") or [None] * len(split_of)
    keyed = np.flatnonzero([k is not None for k in keys])
    splits_of_key: dict[str, set[str]] = {}
    for i in keyed:
        if split_of[i]:
            splits_of_key.setdefault(keys[i], set()).add(split_of[i])
    crossing = sorted(k for k, splits in splits_of_key.items() if len(splits) > 1)
    group_pairs = {
        f"{x}-{y}": sum(1 for k in crossing if {x, y} <= splits_of_key[k]) for x, y in SPLIT_PAIRS
    }
    return {
        "groups_crossing": group_pairs,
        "example_groups": crossing[:10],
        "exact": crossings(split_of, *duplicates.of_kind(KIND_EXACT).T),
        "near": crossings(split_of, *duplicates.of_kind(KIND_NEAR).T),
        "merged_groups_crossing": _groups_in_several_splits(split_of, groups),
    }


def _groups_in_several_splits(split_of: np.ndarray, groups: np.ndarray) -> int:
    placed = split_of != ""
    split_code = np.array([SPLITS.index(s) for s in split_of[placed]], dtype=np.int64)
    pairs = np.unique(np.column_stack([groups[placed], split_code]), axis=0)
    return int(np.sum(np.bincount(pairs[:, 0]) > 1)) if len(pairs) else 0


def train_test_leaks(leakage: dict[str, Any]) -> dict[str, int]:
    return {what: leakage[what]["train-test"] for what in ("groups_crossing", "exact", "near")}


def _apply_leak_policy(
    task: str, seed: int, mode: str, leakage: dict[str, Any], on_leak: str
) -> None:
    if leakage["example_groups"]:
        log.warning(
            "task %s: %s split: %d group(s) cross splits, e.g. %s",
            task,
            mode,
            len(leakage["example_groups"]),
            ", ".join(leakage["example_groups"][:5]),
        )
    leaks = train_test_leaks(leakage)
    if mode == "official":  # the publisher's split: its crossing groups are warned of above
        leaks["groups_crossing"] = 0
    if not any(leaks.values()):
        return
    message = (
        f"task {task}, seed {seed} ({mode} split): train and test share images of one group or "
        f"duplicate images: {leaks['groups_crossing']} group(s), {leaks['exact']} exact and "
        f"{leaks['near']} near-duplicate pair(s) (see results/audit/{task}/pairs.csv); "
        "set audit.on_leak: warn to go on anyway"
    )
    if on_leak == "error":
        raise DataError(message)
    log.warning(message)


def subsample_train(
    split: dict[str, Any], labels: np.ndarray, fraction: float, n_classes: int
) -> dict[str, Any]:
    """The same split with only `fraction` of each class's training images (at least one);
    val and test stay as they are, so the learning curve is measured on fixed data. One
    permutation per seed and class, of which each fraction takes a prefix: the subset of a
    smaller fraction lies inside that of every larger one."""
    rng = np.random.default_rng(split["seed"])  # not the fraction: subsets are nested
    train = np.asarray(split["train"])
    kept: list[int] = []
    for k in range(n_classes):
        members = rng.permutation(train[labels[train] == k])
        if len(members):
            take = max(1, round(len(members) * fraction))
            kept += members[:take].tolist()
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
