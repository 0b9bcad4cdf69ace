import numpy as np
import pytest

from medtransfer.data import DataError
from medtransfer.splits import balanced_class_weights, make_split, stratified_split


def meta(labels, classes=("a", "b"), official=None):
    return {
        "task": "t",
        "dataset": "d",
        "labels": list(labels),
        "classes": list(classes),
        "official_split": official,
    }


def test_split_is_deterministic_and_stratified():
    labels = np.array([0] * 300 + [1] * 100)
    first = make_split(meta(labels), seed=3, val=0.1, test=0.2)
    assert first == make_split(meta(labels), seed=3, val=0.1, test=0.2)
    assert first != make_split(meta(labels), seed=4, val=0.1, test=0.2)
    assert first["counts"] == {"train": [210, 70], "val": [30, 10], "test": [60, 20]}
    everything = first["train"] + first["val"] + first["test"]
    assert sorted(everything) == list(range(400))


def test_class_too_small_is_named():
    labels = np.array([0] * 50 + [1] * 4)
    with pytest.raises(DataError, match="class 'b' has 4 images.*at least 10"):
        stratified_split(labels, ["a", "b"], 0, 0.1, 0.2, "t")


def test_balanced_class_weights_match_the_paper_ratio():
    weights = balanced_class_weights(np.array([0] * 1000 + [1] * 3000), 2)
    assert weights[0] / weights[1] == pytest.approx(3.0)


def test_official_split_draws_val_from_train_when_absent():
    labels = [0, 1] * 20 + [0, 1] * 5
    official = ["train"] * 40 + ["test"] * 10
    split = make_split(meta(labels, official=official), seed=0, val=0.1, test=0.2, mode="official")
    assert split["test"] == list(range(40, 50))
    assert len(split["val"]) == 4 and set(split["val"]) < set(range(40))


def test_official_split_needs_one():
    with pytest.raises(DataError, match="no official split"):
        make_split(meta([0, 1] * 10), 0, 0.1, 0.2, mode="official")
