"""Dataset adapters and the `prepare` stage: raw downloads -> one uint8 array per task.

An adapter lists a dataset's items (where each image is, its raw label, its official split)
and opens one item as a Pillow image. A task maps raw labels onto classes and caps them.
"""

from __future__ import annotations

import csv
import gzip
import logging
import string
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFile

from .config import ConfigError
from .io import atomic_path, write_json

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".webp"}
# Pillow's safety limit would reject large fundus and whole-slide-like photos; we trust the data.
Image.MAX_IMAGE_PIXELS = None
ImageFile.LOAD_TRUNCATED_IMAGES = False


class DataError(ValueError):
    """Input data that cannot give correct results; the message names the file or class."""


@dataclass(frozen=True)
class Item:
    ref: str  # a file path, or 'file.npz:train_images[17]' for array datasets
    label: str  # raw label as the dataset writes it
    split: str | None = None  # official split (train/val/test) where the dataset has one


class Dataset:
    """A list of items and a way to open each one as an image."""

    def __init__(self, items: list[Item], opener: Callable[[int], Image.Image]):
        self.items = items
        self._opener = opener

    def open(self, index: int) -> Image.Image:
        return self._opener(index)


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise DataError(f"{what} not found: {path}")
    return path


def _file_opener(items: list[Item]) -> Callable[[int], Image.Image]:
    return lambda index: Image.open(items[index].ref)


def folder_dataset(root: Path, spec: dict[str, Any]) -> Dataset:
    """Class sub-folders (`root/<class>/*`), or per-split folders (`root/<split dir>/<class>/*`)."""
    split_dirs = spec.get("splits")
    groups = (
        [(name, root / sub) for name, subs in split_dirs.items() for sub in _as_list(subs)]
        if split_dirs
        else [(None, root)]
    )
    items = []
    for split, folder in groups:
        class_dirs = sorted(p for p in _require(folder, "image folder").iterdir() if p.is_dir())
        if not class_dirs:
            raise DataError(f"no class sub-folders in {folder}")
        for class_dir in class_dirs:
            files = _image_files(class_dir)
            if not files:
                raise DataError(f"class folder {class_dir} holds no image files")
            items += [Item(str(f), class_dir.name, split) for f in files]
    return Dataset(items, _file_opener(items))


def _csv_label(row: dict[str, str], spec: dict[str, Any], where: str) -> str:
    if "onehot" in spec:
        hot = [col for col in spec["onehot"] if float(row[col] or 0) >= 0.5]
        if len(hot) > 1:
            raise DataError(f"{where}: more than one one-hot label set ({', '.join(hot)})")
        return hot[0] if hot else spec.get("onehot_default", "")
    return row[spec["label"]].strip()


def csv_dataset(root: Path, spec: dict[str, Any]) -> Dataset:
    """An image folder plus a labels CSV; `filename` names each row's image from its columns."""
    for key in ("labels_csv", "filename"):
        if key not in spec:
            raise ConfigError(f"datasets.<csv>: the csv adapter needs '{key}' (dataset at {root})")
    if ("label" in spec) == ("onehot" in spec):
        raise ConfigError(f"datasets.<csv> at {root}: give exactly one of 'label' or 'onehot'")
    image_root = _require(root / spec.get("images", ""), "image folder")
    csv_path = _require(root / spec["labels_csv"], "labels CSV")
    with open(csv_path, newline="") as handle:
        reader = csv.DictReader(handle)
        needed = {f for _, f, _, _ in string.Formatter().parse(spec["filename"]) if f}
        needed |= set(spec.get("onehot", [])) | ({spec["label"]} if "label" in spec else set())
        missing_cols = needed - set(reader.fieldnames or [])
        if missing_cols:
            raise DataError(
                f"{csv_path}: missing column(s) {', '.join(sorted(missing_cols))}; "
                f"it has {', '.join(reader.fieldnames or [])}"
            )
        rows = list(reader)
    items, absent, listed = [], [], set()
    for line, row in enumerate(rows, start=2):
        path = image_root / spec["filename"].format(**row)
        label = _csv_label(row, spec, f"{csv_path} line {line}")
        listed.add(path)
        if not path.is_file():
            absent.append(str(path))
        elif label:  # rows with an empty label are unlabelled: listed, but no item
            items.append(Item(str(path), label))
    unlisted = [str(p) for p in _image_files(image_root) if p not in listed]
    if (absent or unlisted) and spec.get("on_mismatch", "error") == "error":
        problems = []
        if absent:
            problems.append(f"{len(absent)} row(s) name images that do not exist, e.g. {absent[0]}")
        if unlisted:
            problems.append(f"{len(unlisted)} image(s) have no row, e.g. {unlisted[0]}")
        raise DataError(
            f"{csv_path}: {'; '.join(problems)} (set on_mismatch: skip to leave them out)"
        )
    return Dataset(items, _file_opener(items))


def _label_name(value: int, names: list[str] | dict | None) -> str:
    if names is None:
        return str(value)
    if isinstance(names, dict):
        return str(names.get(value, names.get(str(value), value)))
    return str(names[value])


def _array_dataset(
    arrays: list[tuple[str, np.ndarray, np.ndarray]], origin: str, names: list[str] | dict | None
) -> Dataset:
    items, images = [], []
    for split, split_images, split_labels in arrays:
        labels = np.asarray(split_labels)
        if labels.ndim == 2 and labels.shape[1] != 1:
            raise DataError(
                f"{origin}: {split} labels have shape {labels.shape}; "
                "only single-label classification is supported"
            )
        labels = labels.reshape(-1)
        if len(labels) != len(split_images):
            raise DataError(
                f"{origin}: {len(split_images)} {split} images but {len(labels)} labels"
            )
        for i, value in enumerate(labels):
            items.append(Item(f"{origin}:{split}[{i}]", _label_name(int(value), names), split))
            images.append(split_images[i])
    return Dataset(items, lambda index: Image.fromarray(np.asarray(images[index])))


def npz_dataset(root: Path, spec: dict[str, Any]) -> Dataset:
    """MedMNIST-style .npz: `<split>_images` and `<split>_labels` for train, val and test."""
    with np.load(_require(root, "npz file"), allow_pickle=False) as npz:
        splits = [s for s in ("train", "val", "test") if f"{s}_images" in npz.files]
        if not splits:
            raise DataError(f"{root}: no <split>_images arrays; it has {', '.join(npz.files)}")
        arrays = [(s, npz[f"{s}_images"], npz[f"{s}_labels"]) for s in splits]
    return _array_dataset(arrays, root.name, spec.get("label_names"))


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(_require(path, "IDX file"), "rb") as handle:
        data = handle.read()
    magic = int.from_bytes(data[:4], "big")
    if magic >> 8 != 0x08:  # 0x08: unsigned byte data, the only type MNIST-style files use
        raise DataError(f"{path}: not an unsigned-byte IDX file (magic {magic:#x})")
    ndim = magic & 0xFF
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def idx_dataset(root: Path, spec: dict[str, Any]) -> Dataset:
    """MNIST / Fashion-MNIST IDX files: train-* and t10k-* images and labels."""
    arrays = []
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = _read_idx(root / f"{prefix}-images-idx3-ubyte.gz")
        labels = _read_idx(root / f"{prefix}-labels-idx1-ubyte.gz")
        arrays.append((split, images, labels))
    return _array_dataset(arrays, root.name, spec.get("label_names"))


ADAPTERS = {"folder": folder_dataset, "csv": csv_dataset, "npz": npz_dataset, "idx": idx_dataset}


def open_dataset(spec: dict[str, Any], data_root: str | Path) -> Dataset:
    return ADAPTERS[spec["adapter"]](Path(data_root) / spec["path"], spec)


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


def load_image(dataset: Dataset, index: int, size: int) -> np.ndarray:
    """Decode one item and return it as uint8 (size, size, 3)."""
    with dataset.open(index) as image:
        if image.format == "JPEG":
            image.draft("RGB", (size, size))  # DCT scaling: decode big JPEGs at a fraction
        image.load()
        rgb = to_rgb(image)
    return np.asarray(rgb.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


def prepare_task(
    task_name: str,
    task: dict[str, Any],
    dataset_spec: dict[str, Any],
    data_root: str | Path,
    size: int,
    max_bad_fraction: float,
    images_path: str | Path,
    meta_path: str | Path,
    threads: int = 1,
) -> dict[str, Any]:
    """Decode, convert and resize every image of a task once into a memory-mappable .npy."""
    if size < 32:
        raise ConfigError(f"image_size: {size} px is below VGG16's minimum of 32")
    dataset = open_dataset(dataset_spec, data_root)
    selected = select_task_items(dataset, task, task_name)
    n = len(selected.indices)
    log.info(
        "task %s: %d images of %d classes at %d px, %d threads",
        task_name,
        n,
        len(selected.classes),
        size,
        threads,
    )
    with atomic_path(images_path) as tmp_images:
        failures = _decode_into(tmp_images, dataset, selected, size, threads)
        _check_failures(failures, selected, dataset, max_bad_fraction, task_name)
        keep = [p for p in range(n) if p not in failures]
        if failures:
            _keep_rows(tmp_images, keep)
    labels = [selected.labels[p] for p in keep]
    items = [dataset.items[selected.indices[p]] for p in keep]
    meta = {
        "task": task_name,
        "dataset": task["dataset"],
        "image_size": size,
        "classes": selected.classes,
        "counts": {c: labels.count(k) for k, c in enumerate(selected.classes)},
        "n_images": len(keep),
        "labels": labels,
        "files": [item.ref for item in items],
        "official_split": [item.split for item in items] if items and items[0].split else None,
        "skipped": [
            {"file": dataset.items[selected.indices[p]].ref, "reason": r}
            for p, r in sorted(failures.items())
        ],
        "left_out_labels": selected.left_out,
    }
    write_json(meta_path, meta)
    return meta


def _decode_into(
    path: Path, dataset: Dataset, selected: TaskItems, size: int, threads: int
) -> dict[int, str]:
    """Decode the task's images in parallel into a new .npy at `path`; return the failures.

    Pillow releases the GIL while it decodes and resizes, so threads use every core.
    """
    n = len(selected.indices)
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, size, size, 3))
    failures: dict[int, str] = {}

    def decode(position: int) -> None:
        try:
            array[position] = load_image(dataset, selected.indices[position], size)
        except Exception as error:  # any decoder failure means: skip this file
            failures[position] = f"{type(error).__name__}: {error}"

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for done, _ in enumerate(pool.map(decode, range(n)), start=1):
            if done % 2000 == 0 or done == n:
                rate = done / max(time.monotonic() - started, 1e-9)
                log.info("decoded %d/%d images (%.0f img/s)", done, n, rate)
    array.flush()
    return failures


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
    failures: dict[int, str], selected: TaskItems, dataset: Dataset, limit: float, task_name: str
) -> None:
    for position, reason in sorted(failures.items()):
        log.warning(
            "skipped unreadable image %s (%s)",
            dataset.items[selected.indices[position]].ref,
            reason,
        )
    n = len(selected.indices)
    if n and len(failures) / n > limit:
        first = [dataset.items[selected.indices[p]].ref for p in sorted(failures)[:5]]
        raise DataError(
            f"task {task_name}: {len(failures)} of {n} images are unreadable, more "
            f"than prepare.max_bad_fraction={limit}; first: {', '.join(first)}"
        )


def load_prepared(images_path: str | Path, meta_path: str | Path) -> tuple[np.ndarray, dict]:
    """The prepared images, memory-mapped (never read whole into RAM), and their metadata."""
    from .io import read_json

    return np.load(images_path, mmap_mode="r"), read_json(meta_path)
