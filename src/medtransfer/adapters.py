"""Dataset adapters: each lists a dataset's items (where each image is, its raw label, its
official split, its group) and opens one item as a Pillow image (`ADAPTERS`, by the
config's `adapter:`). Pillow's limits for every image opened are set here.
"""

from __future__ import annotations

import csv
import gzip
import logging
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFile

from .errors import ConfigError, DataError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".webp"}
# A decompression bomb (a small file declaring 30,000 x 30,000 pixels) took 8.7 GB and 3
# minutes to decode: images declaring more than prepare.max_image_megapixels are skipped
# before decoding, counted like any unreadable image. Pillow's own guard (it refuses twice
# its limit on open) backs that up wherever else an image is opened.
DEFAULT_MAX_PIXELS = 100_000_000
Image.MAX_IMAGE_PIXELS = DEFAULT_MAX_PIXELS
ImageFile.LOAD_TRUNCATED_IMAGES = False


@dataclass(frozen=True)
class Item:
    ref: str  # a file path, or 'file.npz:train_images[17]' for array datasets
    label: str  # raw label as the dataset writes it
    split: str | None = None  # official split (train/val/test) where the dataset has one
    group: str | None = None  # what ties images together (patient, lesion, original photo)


class Dataset:
    """A list of items and a way to open each one as an image."""

    def __init__(
        self,
        items: list[Item],
        opener: Callable[[int], Image.Image],
        unlabelled_rows: int = 0,
    ):
        self.items = items
        self._opener = opener
        self.unlabelled_rows = unlabelled_rows  # label-file rows left out for an empty label

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
    folders = (
        [(name, root / sub) for name, subs in split_dirs.items() for sub in _as_list(subs)]
        if split_dirs
        else [(None, root)]
    )
    items = []
    for split, folder in folders:
        class_dirs = sorted(p for p in _require(folder, "image folder").iterdir() if p.is_dir())
        if not class_dirs:
            raise DataError(f"no class sub-folders in {folder}")
        for class_dir in class_dirs:
            files = _image_files(class_dir)
            if not files:
                raise DataError(f"class folder {class_dir} holds no image files")
            items += [Item(str(f), class_dir.name, split) for f in files]
    items = with_group_keys(items, root, spec.get("groups"))
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
    groups = spec.get("groups") or {}
    # utf-8-sig: a byte-order mark (Excel writes one) would otherwise hide in the first column
    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        needed = {f for _, f, _, _ in string.Formatter().parse(spec["filename"]) if f}
        needed |= set(spec.get("onehot", [])) | ({spec["label"]} if "label" in spec else set())
        group_column = groups.get("column")
        if group_column and group_column not in (reader.fieldnames or []):
            if not groups.get("optional"):
                raise DataError(
                    f"{csv_path}: missing column(s) {group_column} (groups.column); it has "
                    f"{', '.join(reader.fieldnames or [])} (groups.optional: true makes each "
                    "image its own group where the column is absent)"
                )
            log.warning(
                "%s: no column %s (groups.column, optional): every image is its own group",
                csv_path,
                group_column,
            )
            group_column = None
        missing_cols = needed - set(reader.fieldnames or [])
        if missing_cols:
            raise DataError(
                f"{csv_path}: missing column(s) {', '.join(sorted(missing_cols))}; "
                f"it has {', '.join(reader.fieldnames or [])}"
            )
        rows = list(reader)
    items, absent, listed, unlabelled = [], [], {}, []
    inside = image_root.resolve()
    for line, row in enumerate(rows, start=2):
        where = f"{csv_path} line {line}"
        path = image_root / spec["filename"].format(**row)
        if not path.resolve().is_relative_to(inside):
            raise DataError(f"{where}: {path} lies outside the dataset's image folder {inside}")
        label = _csv_label(row, spec, where)
        if path in listed:
            first, first_label = listed[path]
            conflict = f" with another label ({first_label!r} vs {label!r})" if (
                first_label != label) else ""  # fmt: skip
            raise DataError(
                f"{where}: {path.name} is listed again{conflict} (first on line {first}); "
                "an image may appear once"
            )
        listed[path] = (line, label)
        if not path.is_file():
            absent.append(str(path))
        elif label:  # rows with an empty label are unlabelled: listed, but no item
            group = (row[group_column].strip() or None) if group_column else None
            items.append(Item(str(path), label, group=group))
        else:
            unlabelled.append(line)
    if unlabelled:
        log.warning("%s: %d row(s) with an empty label left out (lines %s)", csv_path,
                    len(unlabelled), ", ".join(map(str, unlabelled[:10])))  # fmt: skip
    items = with_numeric_labels_canonical(items)
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
    items = with_group_keys(items, root, groups if "pattern" in groups else None)
    return Dataset(items, _file_opener(items), unlabelled_rows=len(unlabelled))


def with_numeric_labels_canonical(items: list[Item]) -> list[Item]:
    """'1' and '1.0' are one class where every label is a number: integral values are
    written as integers."""

    def number(text: str) -> float | None:
        try:
            return float(text)
        except ValueError:
            return None

    values = {item.label: number(item.label) for item in items}
    if not values or any(v is None for v in values.values()):
        return items
    canonical = {k: str(int(v)) if v.is_integer() else repr(v) for k, v in values.items()}
    return [Item(i.ref, canonical[i.label], i.split, i.group) for i in items]


def with_group_keys(items: list[Item], root: Path, spec: dict[str, Any] | None) -> list[Item]:
    """Items with the group their path names: `pattern`'s capture group, searched in the path
    relative to the dataset folder (or in the file name, with `of: name`). An image the
    pattern does not match is a group of its own."""
    if not spec or "pattern" not in spec:
        return items
    pattern = re.compile(spec["pattern"])  # checked by config.check_config
    keyed = []
    for item in items:
        path = Path(item.ref)
        text = path.name if spec.get("of") == "name" else path.relative_to(root).as_posix()
        found = pattern.search(text)
        keyed.append(Item(item.ref, item.label, item.split, found.group(1) if found else None))
    return keyed


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
