"""Adapters on the real sample data, odd image modes and broken files, prepare's outputs."""

from __future__ import annotations

import gzip
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from medtransfer.adapters import open_dataset
from medtransfer.config import ConfigError
from medtransfer.data import (
    TaskImages,
    load_prepared,
    prepare_dataset,
    select_task_items,
    task_meta,
    to_rgb,
)
from medtransfer.errors import DataError
from medtransfer.io import read_json, write_json

from .conftest import ISIC_SAMPLE, NATURAL_IMAGES_COUNTS


def counts(dataset) -> Counter:
    return Counter(item.label for item in dataset.items)


def test_folder_adapter_natural_images(shared_data):
    ds = open_dataset({"adapter": "folder", "path": "natural_images_30px"}, shared_data)
    assert counts(ds) == NATURAL_IMAGES_COUNTS


def test_folder_adapter_merges_split_folders(shared_data):
    spec = {
        "adapter": "folder",
        "path": "blood_cells_wbc",
        "splits": {"train": "TRAIN_subset250", "test": "TEST"},
    }
    ds = open_dataset(spec, shared_data)
    by_split = Counter((item.split, item.label) for item in ds.items)
    assert by_split[("train", "EOSINOPHIL")] == 250
    assert by_split[("test", "EOSINOPHIL")] == 623 and by_split[("test", "NEUTROPHIL")] == 624
    assert len(ds.items) == 1000 + 2487


def test_folder_adapter_cats_dogs_and_chest(shared_data):
    cats = open_dataset({"adapter": "folder", "path": "cats_vs_dogs_sample"}, shared_data)
    assert counts(cats) == {"cat": 401, "dog": 401}
    chest = open_dataset({"adapter": "folder", "path": "chest_xray_kermany_val"}, shared_data)
    assert counts(chest) == {"NORMAL": 8, "PNEUMONIA": 8}


def test_csv_adapter_isic_metadata(shared_data):
    spec = {
        "adapter": "csv",
        "path": "isic_archive_sample",
        "labels_csv": "metadata.csv",
        "filename": "{label}/{isic_id}.jpg",
        "label": "benign_malignant",
    }
    assert counts(open_dataset(spec, shared_data)) == {"benign": 398, "malignant": 159}
    by_diagnosis = open_dataset({**spec, "label": "diagnosis"}, shared_data)
    assert counts(by_diagnosis) == {"nevus": 396, "melanoma": 159}  # 2 rows have no diagnosis


def test_csv_adapter_kaggle_dr(shared_data):
    spec = {
        "adapter": "csv",
        "path": "diabetic_retinopathy_kaggle_sample",
        "images": "images",
        "labels_csv": "labels.csv",
        "filename": "{image}.jpeg",
        "label": "level",
    }
    assert counts(open_dataset(spec, shared_data)) == {"0": 5, "1": 2, "2": 1, "4": 2}


def test_csv_adapter_onehot_columns(tmp_path):
    for name in ("a", "b", "c"):
        Image.new("RGB", (8, 8)).save(tmp_path / f"{name}.png")
    (tmp_path / "gt.csv").write_text(
        "image_id,melanoma,seborrheic_keratosis\na,1.0,0.0\nb,0.0,1.0\nc,0.0,0.0\n"
    )
    spec = {
        "adapter": "csv",
        "path": ".",
        "labels_csv": "gt.csv",
        "filename": "{image_id}.png",
        "onehot": ["melanoma", "seborrheic_keratosis"],
        "onehot_default": "nevus",
    }
    ds = open_dataset(spec, tmp_path)
    assert [i.label for i in ds.items] == ["melanoma", "seborrheic_keratosis", "nevus"]


def test_csv_adapter_names_missing_and_unlisted_images(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "present.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "unlisted.png")
    (tmp_path / "labels.csv").write_text("image,level\npresent,0\nabsent,1\n")
    spec = {
        "adapter": "csv",
        "path": ".",
        "labels_csv": "labels.csv",
        "filename": "{image}.png",
        "label": "level",
    }
    with pytest.raises(DataError, match=r"absent\.png.*unlisted\.png"):
        open_dataset(spec, tmp_path)
    assert len(open_dataset({**spec, "on_mismatch": "skip"}, tmp_path).items) == 1


def test_npz_adapter_pneumoniamnist(shared_data):
    spec = {
        "adapter": "npz",
        "path": "pneumoniamnist/pneumoniamnist_reassembled.npz",
        "label_names": ["normal", "pneumonia"],
    }
    ds = open_dataset(spec, shared_data)
    split_counts = Counter((i.split, i.label) for i in ds.items)
    assert split_counts == {
        ("train", "normal"): 1214,
        ("train", "pneumonia"): 3494,
        ("val", "normal"): 135,
        ("val", "pneumonia"): 389,
        ("test", "normal"): 234,
        ("test", "pneumonia"): 390,
    }
    assert ds.open(0).size == (28, 28)


def _write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_idx_adapter(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 6), ("t10k", 4)):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 255, (n, 28, 28)))
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 2)
    ds = open_dataset({"adapter": "idx", "path": ".", "label_names": ["top", "trouser"]}, tmp_path)
    assert Counter((i.split, i.label) for i in ds.items) == {
        ("train", "top"): 3,
        ("train", "trouser"): 3,
        ("test", "top"): 2,
        ("test", "trouser"): 2,
    }
    assert np.asarray(ds.open(1)).shape == (28, 28)


def test_empty_class_folder_is_named(tmp_path):
    (tmp_path / "cls_a").mkdir()
    (tmp_path / "cls_b").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "cls_a" / "x.png")
    with pytest.raises(DataError, match="cls_b holds no image files"):
        open_dataset({"adapter": "folder", "path": "."}, tmp_path)


def test_mapping_that_leaves_one_class_is_refused(shared_data):
    ds = open_dataset({"adapter": "folder", "path": "chest_xray_kermany_val"}, shared_data)
    with pytest.raises(ConfigError, match="tasks.chest.*leaves one class"):
        select_task_items(ds, {"classes": {"sick": ["PNEUMONIA"]}}, "chest")


def test_task_mapping_and_cap(shared_data):
    ds = open_dataset({"adapter": "folder", "path": "natural_images_30px"}, shared_data)
    task = {
        "classes": {"animal": ["cat", "dog"], "vehicle": ["car", "motorbike"]},
        "max_per_class": 100,
    }
    chosen = select_task_items(ds, task, "t")
    assert chosen.classes == ["animal", "vehicle"]
    assert Counter(chosen.labels) == {0: 100, 1: 100}
    assert chosen == select_task_items(ds, task, "t")  # the same subset every time
    assert chosen.left_out["person"] == 986


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "1", "I", "F"])
def test_every_mode_becomes_rgb(mode):
    image = Image.new(mode, (10, 6))
    if mode == "I;16":
        image = Image.fromarray(np.full((6, 10), 4000, dtype=np.uint16))
        assert image.mode.startswith("I;16")
    rgb = to_rgb(image)
    assert rgb.mode == "RGB" and rgb.size == (10, 6)
    if mode == "I;16":  # scaled by its maximum, not clipped to white
        assert np.asarray(rgb).max() == 255


def _odd_images(folder):
    (folder / "good").mkdir(parents=True)
    (folder / "bad").mkdir()
    specs = {
        "gray.png": ("L", None),
        "rgba.png": ("RGBA", None),
        "cmyk.jpg": ("CMYK", None),
        "palette.png": ("P", None),
        "one_bit.png": ("1", None),
    }
    for name, (mode, _) in specs.items():
        Image.new(mode, (40, 30)).save(folder / "good" / name)
    Image.fromarray(np.arange(1200, dtype=np.uint16).reshape(30, 40) * 50).save(
        folder / "good" / "sixteen.png"
    )
    for i in range(6):
        Image.new("RGB", (50, 50), (i * 40, 0, 0)).save(folder / "bad" / f"ok{i}.jpg")
    jpeg = (folder / "bad" / "ok0.jpg").read_bytes()
    (folder / "bad" / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (folder / "bad" / "empty.jpg").write_bytes(b"")
    (folder / "bad" / "text.jpg").write_text("not an image at all")


ODD = {"adapter": "folder", "path": "data"}


def test_prepare_skips_broken_files_and_names_them(tmp_path):
    _odd_images(tmp_path / "data")
    out = tmp_path / "out"
    index = prepare_dataset(
        "odd",
        ODD,
        {"odd": {"dataset": "odd"}},
        tmp_path,
        32,
        0.5,
        out / "images.npy",
        out / "index.json",
        threads=2,
    )
    meta = task_meta(index, "odd")
    skipped = sorted(s["file"].rsplit("/", 1)[1] for s in meta["skipped"])
    assert skipped == ["empty.jpg", "text.jpg", "truncated.jpg"]
    assert len(index["skipped"]) == 3
    images = np.load(out / "images.npy", mmap_mode="r")
    assert images.shape == (12, 32, 32, 3) and images.dtype == np.uint8
    assert meta["counts"] == {"bad": 6, "good": 6}
    assert meta["rows"] == list(range(12))
    assert read_json(out / "index.json")["tasks"]["odd"]["n_images"] == 12
    assert not list(out.glob(".tmp-*"))


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares a huge image (a decompression bomb's signature)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_a_decompression_bomb_is_skipped_before_it_is_decoded(tmp_path):
    """Pillow refuses it from its header (DecompressionBombError), before any decoding."""
    _odd_images(tmp_path / "data")
    (tmp_path / "data" / "bad" / "bomb.png").write_bytes(png_declaring(30_000, 30_000))
    out = tmp_path / "out"
    index = prepare_dataset("odd", ODD, {"odd": {"dataset": "odd"}}, tmp_path, 32, 0.5,
                            out / "images.npy", out / "index.json", threads=2)  # fmt: skip
    reasons = {s["file"].rsplit("/", 1)[1]: s["reason"] for s in index["skipped"]}
    assert "DecompressionBombError" in reasons["bomb.png"]


def test_an_image_over_the_configured_pixel_limit_is_skipped_naming_its_size(tmp_path):
    """12,000 x 12,000 is under Pillow's own guard but over prepare.max_image_megapixels."""
    _odd_images(tmp_path / "data")
    (tmp_path / "data" / "bad" / "big.png").write_bytes(png_declaring(12_000, 12_000))
    out = tmp_path / "out"
    index = prepare_dataset("odd", ODD, {"odd": {"dataset": "odd"}}, tmp_path, 32, 0.5,
                            out / "images.npy", out / "index.json",
                            max_image_megapixels=100)  # fmt: skip
    reasons = {s["file"].rsplit("/", 1)[1]: s["reason"] for s in index["skipped"]}
    assert "big.png declares 12000 x 12000 pixels (144 megapixels)" in reasons["big.png"]
    assert "max_image_megapixels (100)" in reasons["big.png"]


def test_an_images_array_over_the_memory_limit_is_refused_before_decoding(tmp_path):
    _odd_images(tmp_path / "data")
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"datasets.odd: \d+ images at 1024 px make a .* GB"):
        prepare_dataset("odd", ODD, {"odd": {"dataset": "odd"}}, tmp_path, 1024, 0.5,
                        out / "images.npy", out / "index.json", max_array_gb=0.01)  # fmt: skip
    assert not out.exists() or not list(out.iterdir())


def test_prepare_removes_what_a_killed_prepare_left(tmp_path):
    _odd_images(tmp_path / "data")
    out = tmp_path / "out"
    out.mkdir()
    leftover = out / ".tmp-k1lled_1-images.npy"
    leftover.write_bytes(b"half an array")
    prepare_dataset("odd", ODD, {"odd": {"dataset": "odd"}}, tmp_path, 32, 0.5,
                    out / "images.npy", out / "index.json")  # fmt: skip
    assert not leftover.exists() and (out / "images.npy").is_file()


def test_prepare_fails_above_the_bad_fraction(tmp_path):
    _odd_images(tmp_path / "data")
    out = tmp_path / "out"
    with pytest.raises(
        DataError, match=r"task odd: 3 of 15 images are unreadable.*(empty|text|trunc)"
    ):
        prepare_dataset(
            "odd",
            ODD,
            {"odd": {"dataset": "odd"}},
            tmp_path,
            32,
            0.01,
            out / "images.npy",
            out / "index.json",
        )
    assert not (out / "images.npy").exists()


ISIC = ISIC_SAMPLE
ISIC_TASKS = {
    "malignant": {"dataset": "isic"},
    "nevus_vs_melanoma": {
        "dataset": "isic",
        "label": "diagnosis",
        "classes": {"nevus": ["nevus"], "melanoma": ["melanoma"]},
        "max_per_class": 40,
    },
}


def test_tasks_on_one_dataset_share_its_decoded_images(tmp_path, shared_data):
    out = tmp_path / "out"
    index = prepare_dataset(
        "isic", ISIC, ISIC_TASKS, shared_data, 32, 0.01, out / "images.npy", out / "index.json"
    )
    malignant, melanoma = (task_meta(index, t) for t in ISIC_TASKS)
    # the second task takes a subset of the first one's images: none is decoded twice
    assert index["n_images"] == malignant["n_images"] == 557
    assert melanoma["counts"] == {"nevus": 40, "melanoma": 40}
    assert set(melanoma["rows"]) <= set(malignant["rows"])
    for meta in (malignant, melanoma):
        write_path = out / f"{meta['task']}.json"
        write_json(write_path, meta)
        images, loaded = load_prepared(out / "images.npy", write_path)
        assert len(images) == meta["n_images"] and images.shape[1:] == (32, 32, 3)
        # a task's row k is the image of its file k
        k = len(images) // 2
        position = index["files"].index(meta["files"][k])
        assert np.array_equal(images[np.array([k])][0], np.load(out / "images.npy")[position])
    assert isinstance(
        load_prepared(out / "images.npy", out / "nevus_vs_melanoma.json")[0], TaskImages
    )


def test_unknown_task_in_a_dataset_index_is_named():
    with pytest.raises(DataError, match="no task 'blood'.*malignant"):
        task_meta({"tasks": {"malignant": {}}, "image_size": 32}, "blood", "index.json")


def test_csv_group_column_groups_lesions_and_may_be_optional(tmp_path, shared_data, caplog):
    """fok2019's ISIC entry: lesion_id groups images; an empty value is a group of its own;
    the sample's export has no such column, which `optional` turns into a warning."""
    for name in ("a", "b", "c", "d"):
        Image.new("RGB", (8, 8)).save(tmp_path / f"{name}.png")
    (tmp_path / "m.csv").write_text("id,label,lesion_id\na,x,L1\nb,x,L1\nc,y,\nd,y,L2\n")
    spec = {"adapter": "csv", "path": ".", "labels_csv": "m.csv", "filename": "{id}.png",
            "label": "label", "groups": {"column": "lesion_id"}}  # fmt: skip
    items = sorted(open_dataset(spec, tmp_path).items, key=lambda item: item.ref)
    assert [item.group for item in items] == ["L1", "L1", None, "L2"]
    isic = {"adapter": "csv", "path": "isic_archive_sample", "labels_csv": "metadata.csv",
            "filename": "{label}/{isic_id}.jpg", "label": "benign_malignant",
            "groups": {"column": "lesion_id"}}  # fmt: skip
    with pytest.raises(DataError, match="missing column.*lesion_id.*groups.optional"):
        open_dataset(isic, shared_data)
    optional = {**isic, "groups": {"column": "lesion_id", "optional": True}}
    with caplog.at_level("WARNING", logger="medtransfer.adapters"):
        dataset = open_dataset(optional, shared_data)
    assert all(item.group is None for item in dataset.items) and len(dataset.items) == 557
    assert "no column lesion_id" in caplog.text


def lesion_folder(tmp_path, csv_text: str, bom: bool = False):
    """Three images and a labels CSV: the csv adapter's input."""
    root = tmp_path / "lesions"
    (root / "img").mkdir(parents=True)
    for name in ("a", "b", "c"):
        Image.new("RGB", (8, 8)).save(root / "img" / f"{name}.png")
    (root / "labels.csv").write_bytes(("\ufeff" if bom else "").encode() + csv_text.encode())
    spec = {"adapter": "csv", "path": "lesions", "images": "img", "labels_csv": "labels.csv",
            "filename": "{image_id}.png", "label": "label", "on_mismatch": "skip"}  # fmt: skip
    return spec


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("../../elsewhere/x,1", r"line 2: .*x.png lies outside the dataset's image folder"),
        ("a,1\nb,0\na,1", r"line 4: a.png is listed again \(first on line 2\)"),
        ("a,1\na,0", r"line 3: a.png is listed again with another label \('1' vs '0'\)"),
    ],
)
def test_a_labels_file_that_would_change_the_task_is_refused(tmp_path, rows, message):
    spec = lesion_folder(tmp_path, f"image_id,label\n{rows}\n")
    with pytest.raises(DataError, match=message):
        open_dataset(spec, tmp_path)


def test_labels_csv_with_a_byte_order_mark_and_number_spellings(tmp_path, caplog):
    spec = lesion_folder(tmp_path, "image_id,label\na,1\nb, 1.0\nc,\n", bom=True)
    dataset = open_dataset(spec, tmp_path)  # the BOM no longer hides the image_id column
    assert sorted(item.label for item in dataset.items) == ["1", "1"]  # one class, not two
    assert "1 row(s) with an empty label left out (lines 4)" in caplog.text


def test_rows_with_an_empty_label_are_counted_in_the_task_meta(tmp_path):
    spec = lesion_folder(tmp_path, "image_id,label\na,1\nb,0\nc, \n")
    out = tmp_path / "out"
    index = prepare_dataset("lesions", spec, {"t": {"dataset": "lesions"}}, tmp_path, 32, 0.0,
                            out / "images.npy", out / "index.json")  # fmt: skip
    meta = task_meta(index, "t")
    assert meta["unlabelled_rows"] == 1 and meta["n_images"] == 2
