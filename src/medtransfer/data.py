"""The `prepare` and `select` stages: raw downloads -> one uint8 array per dataset.

A dataset's adapter (medtransfer.adapters) lists its items and opens each as a Pillow image.
A task maps raw labels onto classes and caps them; `prepare` decodes the images of all tasks
on a dataset once, `select` gives each task its rows, jobs load them back.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .adapters import DEFAULT_MAX_PIXELS, Dataset, open_dataset
from .errors import ConfigError, DataError
from .fingerprints import Fingerprints, fingerprint_into
from .io import atomic_path, write_json

log = logging.getLogger(__name__)


@dataclass
class TaskItems:
    """The items of one task, in a fixed order, with integer labels."""

    classes: list[str]
    indices: list[int]  # positions in the dataset's item list
    labels: list[int]
    left_out: dict[str, int]  # raw label -> number of items no class takes


def select_task_items(dataset: Dataset, task: dict[str, Any], name: str) -> TaskItems:
    """Map raw labels to the task's classes, drop the rest, cap each class deterministically."""
    raw_counts = Counter(item.label for item in dataset.items)
    mapping = task.get("classes")
    if mapping is None:
        mapping = {label: [label] for label in sorted(raw_counts)}
    class_of: dict[str, int] = {}
    for k, (cls, raws) in enumerate(mapping.items()):
        for raw in map(str, raws):
            if raw in class_of:
                raise ConfigError(f"tasks.{name}.classes: raw label {raw!r} is in two classes")
            if raw not in raw_counts:
                raise ConfigError(
                    f"tasks.{name}.classes.{cls}: raw label {raw!r} does not occur "
                    f"in the dataset; it has {', '.join(sorted(raw_counts))}"
                )
            class_of[raw] = k
    classes = list(mapping)
    if len(classes) < 2:
        raise ConfigError(
            f"tasks.{name}: the label mapping leaves one class ({classes[0]!r}); "
            "a classification task needs at least 2"
        )
    per_class: list[list[int]] = [[] for _ in classes]
    for i, item in enumerate(dataset.items):
        if item.label in class_of:
            per_class[class_of[item.label]].append(i)
    cap = task.get("max_per_class")
    if cap:
        rng = np.random.default_rng(0)  # fixed: the same subset for every seed and rerun
        per_class = [
            sorted(rng.permutation(ix)[:cap].tolist()) if len(ix) > cap else ix for ix in per_class
        ]
    chosen = sorted((i, k) for k, ix in enumerate(per_class) for i in ix)
    left_out = {raw: n for raw, n in raw_counts.items() if raw not in class_of}
    return TaskItems(classes, [i for i, _ in chosen], [k for _, k in chosen], left_out)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB. 16-bit and float images are scaled by their own maximum."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        peak = array.max()
        scale = 255.0 / peak if peak > 255 else 1.0
        image = Image.fromarray(np.clip(array * scale, 0, 255).astype(np.uint8), "L")
    elif image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, image)
    return image.convert("RGB")


def decode_rgb(
    dataset: Dataset, index: int, size: int, max_pixels: float = DEFAULT_MAX_PIXELS
) -> Image.Image:
    """Decode one item as RGB, big JPEGs at a fraction of their size (DCT scaling) that is
    still at least `size` on each side; refuse, before decoding, one declaring more than
    `max_pixels`."""
    with dataset.open(index) as image:
        width, height = image.size
        if width * height > max_pixels:
            raise DataError(
                f"{dataset.items[index].ref} declares {width} x {height} pixels "
                f"({width * height / 1e6:.0f} megapixels), over prepare.max_image_megapixels "
                f"({max_pixels / 1e6:g}): not decoded"
            )
        if image.format == "JPEG":
            image.draft("RGB", (size, size))
        image.load()
        return to_rgb(image)


def resized(rgb: Image.Image, size: int) -> np.ndarray:
    return np.asarray(rgb.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


def _task_listings(
    tasks: dict[str, dict[str, Any]], dataset_spec: dict[str, Any], data_root: str | Path
) -> dict[str, tuple[Dataset, TaskItems]]:
    """Each task's listing and items; tasks reading the same label column share one listing
    (a csv listing reads the CSV and walks the whole image folder)."""
    datasets: dict[str | None, Dataset] = {}
    listings = {}
    for name, task in tasks.items():
        column = task.get("label")
        if column not in datasets:
            spec = {**dataset_spec, "label": column} if column else dataset_spec
            datasets[column] = open_dataset(spec, data_root)
        listings[name] = (datasets[column], select_task_items(datasets[column], task, name))
    return listings


def prepare_dataset(
    dataset_name: str,
    dataset_spec: dict[str, Any],
    tasks: dict[str, dict[str, Any]],
    data_root: str | Path,
    size: int,
    max_bad_fraction: float,
    images_path: str | Path,
    index_path: str | Path,
    threads: int = 1,
    fingerprints_path: str | Path | None = None,
    max_image_megapixels: float = DEFAULT_MAX_PIXELS / 1e6,
    max_array_gb: float | None = None,
) -> dict[str, Any]:
    """Decode every image that any of `tasks` takes from a dataset, once, into one .npy, and
    fingerprint each for the leakage audit (`fingerprints.npz` beside the images, row for row).

    Tasks on one dataset (ISIC malignant, melanoma, 3-class) share its decoded images; the
    index written beside them tells each task which rows are its own (see `task_meta`).
    """
    if fingerprints_path is None:
        fingerprints_path = Path(images_path).with_name("fingerprints.npz")
    if not tasks:
        raise ConfigError(f"datasets.{dataset_name}: no task of the config uses this dataset")
    listings = _task_listings(tasks, dataset_spec, data_root)
    # Each image once, in the order tasks list them: a single task's rows are then 0..n-1.
    sources: dict[str, tuple[Dataset, int]] = {}
    for dataset, selected in listings.values():
        for i in selected.indices:
            sources.setdefault(dataset.items[i].ref, (dataset, i))
    refs = list(sources)
    _check_array_size(dataset_name, len(refs), size, max_array_gb)
    max_pixels = max_image_megapixels * 1e6
    # Pillow refuses on open at twice its limit: keep that above ours, so ours names the file
    Image.MAX_IMAGE_PIXELS = max(DEFAULT_MAX_PIXELS, int(max_pixels))
    log.info(
        "dataset %s: %d images for task(s) %s at %d px, %d threads",
        dataset_name,
        len(refs),
        ", ".join(tasks),
        size,
        threads,
    )
    with atomic_path(images_path) as tmp_images:
        prints = Fingerprints.empty(len(refs))
        failures = _decode_into(
            tmp_images, [sources[r] for r in refs], size, threads, prints, max_pixels
        )
        for name, (dataset, selected) in listings.items():
            task_refs = [dataset.items[i].ref for i in selected.indices]
            _check_failures(task_refs, failures, max_bad_fraction, name)
        kept = [r for r in refs if r not in failures]
        if failures:
            kept_rows = [p for p, r in enumerate(refs) if r not in failures]
            _keep_rows(tmp_images, kept_rows)
            prints = prints.take(kept_rows)
        prints.save(fingerprints_path)
    row_of = {ref: row for row, ref in enumerate(kept)}
    index = {
        "dataset": dataset_name,
        "image_size": size,
        "n_images": len(kept),
        "files": kept,
        "skipped": [{"file": r, "reason": why} for r, why in failures.items()],
        "tasks": {
            name: _task_rows(name, tasks[name], dataset, selected, row_of, failures)
            for name, (dataset, selected) in listings.items()
        },
    }
    write_json(index_path, index)
    return index


def _check_array_size(dataset_name: str, n: int, size: int, max_gb: float | None) -> None:
    """Refuse, before allocating, an images.npy that would not fit (image_size 4096 would make
    Natural Images alone 16 GB)."""
    gigabytes = n * size * size * 3 / 1e9
    if max_gb is not None and gigabytes > max_gb:
        raise ConfigError(
            f"datasets.{dataset_name}: {n} images at {size} px make a {gigabytes:.1f} GB "
            f"images.npy, over prepare.max_array_gb ({max_gb:g}); lower image_size, cap the "
            "tasks (tasks.<name>.max_per_class) or raise the limit"
        )


def _task_rows(
    name: str,
    task: dict[str, Any],
    dataset: Dataset,
    selected: TaskItems,
    row_of: dict[str, int],
    failures: dict[str, str],
) -> dict[str, Any]:
    """One task's images as rows of the dataset array, with their labels, less the unreadable."""
    items = [dataset.items[i] for i in selected.indices]
    keep = [p for p, item in enumerate(items) if item.ref not in failures]
    labels = [selected.labels[p] for p in keep]
    return {
        "task": name,
        "dataset": task["dataset"],
        "classes": selected.classes,
        "counts": {c: labels.count(k) for k, c in enumerate(selected.classes)},
        "n_images": len(keep),
        "rows": [row_of[items[p].ref] for p in keep],
        "labels": labels,
        "files": [items[p].ref for p in keep],
        "official_split": [items[p].split for p in keep] if items and items[0].split else None,
        "groups": [items[p].group for p in keep],
        "skipped": [
            {"file": item.ref, "reason": failures[item.ref]}
            for item in items
            if item.ref in failures
        ],
        "left_out_labels": selected.left_out,
        "unlabelled_rows": dataset.unlabelled_rows,
    }


def task_meta(index: dict[str, Any], task_name: str, index_path: str | Path = "") -> dict[str, Any]:
    """A task's metadata out of its dataset's index: classes, labels, rows, skipped files."""
    if task_name not in index["tasks"]:
        raise DataError(
            f"{index_path or 'dataset index'}: no task {task_name!r} (it holds "
            f"{', '.join(index['tasks'])}); prepare the dataset again"
        )
    return {**index["tasks"][task_name], "image_size": index["image_size"]}


def _decode_into(
    path: Path,
    sources: list[tuple[Dataset, int]],
    size: int,
    threads: int,
    prints: Fingerprints,
    max_pixels: float = DEFAULT_MAX_PIXELS,
) -> dict[str, str]:
    """Decode (dataset, index) images in parallel into a new .npy at `path` and fingerprint
    them into `prints`; return failures.

    Pillow releases the GIL while it decodes and resizes, so threads use every core.
    """
    n = len(sources)
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, size, size, 3))
    failures: dict[str, str] = {}

    def decode(position: int) -> None:
        dataset, index = sources[position]
        try:
            rgb = decode_rgb(dataset, index, size, max_pixels)
            array[position] = resized(rgb, size)
            fingerprint_into(prints, position, rgb)
        except Exception as error:  # any decoder failure means: skip this file
            failures[dataset.items[index].ref] = f"{type(error).__name__}: {error}"

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for done, _ in enumerate(pool.map(decode, range(n)), start=1):
            if done % 2000 == 0 or done == n:
                rate = done / max(time.monotonic() - started, 1e-9)
                log.info("decoded %d/%d images (%.0f img/s)", done, n, rate)
    array.flush()
    return dict(sorted(failures.items()))


def _keep_rows(path: Path, keep: list[int]) -> None:
    """Rewrite the .npy at `path` with only the rows in `keep`, a chunk at a time."""
    source = np.load(path, mmap_mode="r")
    compact_path = path.with_name(path.name + ".compact.npy")
    compact = np.lib.format.open_memmap(
        compact_path, mode="w+", dtype=np.uint8, shape=(len(keep), *source.shape[1:])
    )
    for start in range(0, len(keep), 1024):
        compact[start : start + 1024] = source[keep[start : start + 1024]]
    compact.flush()
    del compact, source
    compact_path.replace(path)


def _check_failures(
    refs: list[str], failures: dict[str, str], limit: float, task_name: str
) -> None:
    bad = [r for r in refs if r in failures]
    for ref in bad:
        log.warning("task %s: skipped unreadable image %s (%s)", task_name, ref, failures[ref])
    if refs and len(bad) / len(refs) > limit:
        raise DataError(
            f"task {task_name}: {len(bad)} of {len(refs)} images are unreadable, more "
            f"than prepare.max_bad_fraction={limit}; first: {', '.join(bad[:5])}"
        )


class TaskImages:
    """A task's rows of its dataset's memory-mapped image array, indexed like an array."""

    def __init__(self, array: np.ndarray, rows: list[int]):
        self.array, self.rows = array, np.asarray(rows, dtype=np.int64)
        self.shape = (len(self.rows), *array.shape[1:])
        self.dtype = array.dtype

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: Any) -> np.ndarray:
        return self.array[self.rows[key]]


def load_prepared(images_path: str | Path, meta_path: str | Path) -> tuple[Any, dict]:
    """A task's images, memory-mapped (never read whole into RAM), and its metadata."""
    from .io import read_json

    array, meta = np.load(images_path, mmap_mode="r"), read_json(meta_path)
    rows = meta["rows"]
    if rows and max(rows) >= len(array):
        raise DataError(
            f"{meta_path}: rows beyond the {len(array)} images of {images_path}; "
            "prepare the dataset again"
        )
    if rows == list(range(len(array))):
        return array, meta  # the task is the whole dataset: no indirection
    return TaskImages(array, rows), meta
