"""The leakage audit and grouped splits on real sample data, and the matcher on its own."""

from __future__ import annotations

import csv
import io
import os
import re
from collections import defaultdict

import numpy as np
import pytest
from PIL import Image

from medtransfer.adapters import open_dataset
from medtransfer.audit import audit_task
from medtransfer.config import ConfigError, check_config
from medtransfer.data import prepare_dataset, select_task_items, task_meta
from medtransfer.duplicates import _near_candidates, find_duplicates, find_overlap
from medtransfer.fingerprints import Fingerprints, fingerprint_into
from medtransfer.splits import make_split, merge_groups

from .conftest import ISIC_SAMPLE

BLOOD = {
    "adapter": "folder",
    "path": "blood_cells_wbc",
    "splits": {"train": "TRAIN_subset250", "test": "TEST"},
}
BLOOD_GROUPS = {"pattern": r"^([^/]+/[^/]+/_\d+)_"}
# the test's own reading of which smear photo a crop was made from (shared/data/README.md)
ORIGINAL = re.compile(r"(TRAIN_subset250|TEST)/([A-Z]+)/_(\d+)_\d+\.jpeg$")


def blood_meta(shared_data, groups):
    spec = {**BLOOD, "groups": groups} if groups else BLOOD
    dataset = open_dataset(spec, shared_data)
    chosen = select_task_items(dataset, {"dataset": "blood"}, "blood")
    items = [dataset.items[i] for i in chosen.indices]
    meta = {
        "task": "blood",
        "dataset": "blood_cells",
        "classes": chosen.classes,
        "labels": chosen.labels,
        "official_split": None,
        "groups": [item.group for item in items],
    }
    return meta, [item.ref for item in items]


def originals_in_two_splits(split, files):
    where = defaultdict(set)
    for part in ("train", "val", "test"):
        for i in split[part]:
            where[ORIGINAL.search(files[i]).groups()].add(part)
    return [photo for photo, parts in where.items() if len(parts) > 1]


def test_blood_cell_photos_never_cross_splits_when_grouped(shared_data):
    meta, files = blood_meta(shared_data, BLOOD_GROUPS)
    assert all(ORIGINAL.search(f) for f in files)
    assert len(set(meta["groups"])) == 75 + 27 + 16 + 159 + 71  # README: 71 TEST originals
    for seed in range(4):
        split = make_split(meta, seed, 0.1, 0.2)
        assert originals_in_two_splits(split, files) == []
        assert split["leakage"]["groups_crossing"]["train-test"] == 0
        assert all(n > 0 for counts in split["counts"].values() for n in counts)


def test_image_by_image_splits_of_blood_cells_share_photos(shared_data):
    meta, files = blood_meta(shared_data, None)
    split = make_split(meta, 0, 0.1, 0.2)
    assert len(originals_in_two_splits(split, files)) > 100


def test_group_pattern_needs_one_capture_group():
    config = {
        "datasets": {"b": {**BLOOD, "groups": {"pattern": r"(\w+)/(\d+)"}}},
        "tasks": {"t": {"dataset": "b"}},
        "sources": ["none"],
        "targets": ["t"],
        "methods": ["fe-svm"],
        "seeds": [0],
        "image_size": 32,
    }
    with pytest.raises(ConfigError, match=r"datasets.b.groups.pattern .* 2 capture groups"):
        check_config(config)


def prepared_prints(tmp_path, shared_data, name, spec):
    out = tmp_path / name
    index = prepare_dataset(
        name, spec, {name: {"dataset": name}}, shared_data, 32, 0.01,
        out / "images.npy", out / "index.json",
    )  # fmt: skip
    meta = task_meta(index, name)
    return Fingerprints.load(out / "fingerprints.npz").take(meta["rows"]), meta


ISIC = ISIC_SAMPLE


def test_audit_finds_the_isic_images_stored_under_two_ids(tmp_path, shared_data):
    with open(shared_data / "isic_archive_sample" / "metadata.csv", newline="") as handle:
        by_original = defaultdict(list)
        for row in csv.DictReader(handle):
            by_original[row["orig_md5"]].append(row["isic_id"])
    expected = {tuple(sorted(ids)) for ids in by_original.values() if len(ids) > 1}
    assert len(expected) == 2  # the sample data's README
    prints, meta = prepared_prints(tmp_path, shared_data, "isic", ISIC)
    matches = find_duplicates(prints)
    names = [f.rsplit("/", 1)[1].removesuffix(".jpg") for f in meta["files"]]
    found = {tuple(sorted((names[a], names[b]))) for a, b in zip(matches.a, matches.b, strict=True)}
    assert found == expected
    assert set(matches.kind) == {"exact"}


def test_audit_finds_full_resolution_chest_xrays_in_their_28px_medmnist_copies(
    tmp_path, shared_data
):
    """Kaggle's chest_xray/val (16 images) was carved from the Kermany training set that
    PneumoniaMNIST shrank to 28 px after a central square crop: each must be found once."""
    kermany, k_meta = prepared_prints(
        tmp_path, shared_data, "kermany", {"adapter": "folder", "path": "chest_xray_kermany_val"}
    )
    pneumonia, p_meta = prepared_prints(
        tmp_path,
        shared_data,
        "pneumoniamnist",
        {"adapter": "npz", "path": "pneumoniamnist/pneumoniamnist_reassembled.npz"},
    )
    overlap = find_overlap(kermany, pneumonia)
    assert sorted(overlap.a.tolist()) == list(range(16))  # every full-size image, once
    assert set(overlap.variant) == {"center"} and set(overlap.kind) == {"near"}
    # the same label on both sides: PneumoniaMNIST 0 = normal, 1 = pneumonia
    k_labels = [k_meta["classes"][k] for k in np.asarray(k_meta["labels"])[overlap.a]]
    p_labels = np.asarray(p_meta["labels"])[overlap.b]
    assert [c == "PNEUMONIA" for c in k_labels] == [p_meta["classes"][k] == "1" for k in p_labels]
    isic, _ = prepared_prints(tmp_path, shared_data, "isic", ISIC)
    assert len(find_overlap(isic, pneumonia)) == 0  # no chance matches between unlike sets


def fingerprints_of(images):
    prints = Fingerprints.empty(len(images))
    for i, image in enumerate(images):
        fingerprint_into(prints, i, image.convert("RGB"))
    return prints


def reencoded(image, quality=60):
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def test_near_duplicates_survive_resizing_reencoding_gray_and_cropping(shared_data):
    files = sorted((shared_data / "cats_vs_dogs_sample" / "cat").glob("*.jpg"))[:40]
    originals = [Image.open(f).convert("RGB") for f in files]
    photo = originals[0]
    w, h = photo.size
    side = min(w, h)
    copies = [
        photo.resize((w // 3, h // 3)),
        reencoded(photo, 40),
        photo.convert("L").convert("RGB"),
        photo.crop(((w - side) // 2, (h - side) // 2, (w + side) // 2, (h + side) // 2)).resize(
            (28, 28)
        ),
    ]
    matches = find_duplicates(fingerprints_of(originals + copies))
    pairs = {(int(a), int(b)) for a, b in zip(matches.a, matches.b, strict=True)}
    n = len(originals)
    assert {(0, n + k) for k in range(len(copies))} <= pairs
    assert all(a in (0, *range(n, n + 4)) for a, _ in pairs)  # nothing else matched


def test_candidate_search_finds_every_pair_a_brute_force_finds():
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 2**63, size=3000, dtype=np.uint64)
    flips = rng.integers(0, 63, size=(300, 6))
    for i, bits in enumerate(flips):  # plant 300 copies at up to 6 bits' distance
        copy = hashes[i]
        for bit in bits[: i % 7]:
            copy ^= np.uint64(1 << int(bit))
        hashes[2700 + i] = copy
    a, b = _near_candidates(hashes, 6)
    found = {(int(x), int(y)) for x, y in zip(a, b, strict=True)}
    distance = np.bitwise_count(hashes[:, None] ^ hashes[None, :])
    truth = {(int(x), int(y)) for x, y in zip(*np.nonzero(np.triu(distance <= 6, 1)), strict=True)}
    assert len(truth) >= 300 and truth <= found


def test_merge_groups_joins_keys_and_pairs():
    keys = ["p1", None, "p1", None, "p2"]
    groups = merge_groups(keys, np.array([[1, 4]]))
    assert groups[0] == groups[2] and groups[1] == groups[4] and groups[3] not in groups[[0, 1]]
    assert len(set(groups.tolist())) == 3


def test_a_duplicate_whose_file_name_is_not_utf8_is_audited(tmp_path):
    """A Latin-1 file name (bytes that are not UTF-8) reaches pairs.csv as its own bytes."""
    folder = tmp_path / "data" / "d"
    for label in ("a", "b"):
        (folder / label).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (40, 40), (80 * i, 40, 200 if label == "a" else 0)).save(
                folder / label / f"{i}.png"
            )
    latin1 = os.fsdecode(os.fsencode(folder / "a") + b"/l\xe9sion.png")
    Image.open(folder / "a" / "1.png").save(latin1, format="PNG")  # an exact copy of 1.png
    out = tmp_path / "out"
    spec = {"adapter": "folder", "path": "d"}
    index = prepare_dataset("d", spec, {"d": {"dataset": "d"}}, tmp_path / "data", 32, 0.0,
                            out / "images.npy", out / "index.json")  # fmt: skip
    summary = audit_task(
        task_meta(index, "d"),
        out / "fingerprints.npz",
        out / "pairs.csv",
        out / "audit.json",
        6,
        0.98,
    )
    assert summary["exact_pairs"] == 1
    assert b"l\xe9sion.png" in (out / "pairs.csv").read_bytes()
