"""Sources pretrained elsewhere: weights files checked against checksum and architecture."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from medtransfer.config import ConfigError, architecture_grids, check_config  # noqa: E402
from medtransfer.models import pretrained_network  # noqa: E402
from medtransfer.pretrained import WeightsMismatch, check_sha256  # noqa: E402


def legacy_h5(model, path):
    """A Keras-2-style weights file (layer names, weight names), as RadImageNet ships."""
    import h5py
    from keras.src.legacy.saving.legacy_h5_format import save_weights_to_hdf5_group

    with h5py.File(path, "w") as handle:
        save_weights_to_hdf5_group(handle, model)
    return path


def same_weights(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights(), strict=True))


def test_keras3_weights_file_round_trips(tmp_path):
    from medtransfer.lite0 import imagenet_lite0

    source = imagenet_lite0(32)
    source.save_weights(tmp_path / "lab.weights.h5")
    loaded = pretrained_network("efficientnet_lite0", tmp_path / "lab.weights.h5", 32)
    assert same_weights(source, loaded)


def test_applications_h5_file_matched_by_layer_name(tmp_path):
    from medtransfer.models import pretrained_body

    keras.utils.set_random_seed(3)
    source = pretrained_body("resnet50", 32, None)
    path = legacy_h5(source, tmp_path / "radimagenet_resnet50_notop.h5")
    loaded = pretrained_network("resnet50", path, 32)
    assert same_weights(source, loaded)
    assert loaded.get_layer("preprocess").__class__.__name__ == "CaffePreprocess"
    assert (
        pretrained_network("resnet50", path, 32, "torch").get_layer("preprocess").__class__.__name__
        == "TorchPreprocess"
    )


@pytest.mark.parametrize("kind", ["keras3", "legacy"])
def test_a_file_for_another_network_names_the_layer_and_both_shapes(tmp_path, kind):
    """A quarter-width VGG16 declared as VGG16: its first convolution has 16 filters, not 64."""
    from medtransfer.models import build_vgg16

    narrow = build_vgg16(32, 2, width=0.25)
    if kind == "keras3":
        path = tmp_path / "narrow.weights.h5"
        narrow.save_weights(path)
    else:
        path = legacy_h5(narrow, tmp_path / "narrow.h5")
    with pytest.raises(
        WeightsMismatch, match=r"block1_conv1.*\(3, 3, 3, 64\) in the network but \(3, 3, 3, 16\)"
    ):
        pretrained_network("vgg16", path, 32)


def test_a_keras_model_of_another_network_is_refused(tmp_path):
    from medtransfer.models import build_vgg16, save_model

    save_model(build_vgg16(32, 2, width=0.25), tmp_path / "vgg.keras")
    with pytest.raises(WeightsMismatch, match="no layer 'avg_pool'"):
        pretrained_network("efficientnet_lite0", tmp_path / "vgg.keras", 32)


def test_checksum_mismatch_names_the_file_and_both_digests(tmp_path):
    path = tmp_path / "w.h5"
    path.write_bytes(b"weights")
    right = hashlib.sha256(b"weights").hexdigest()
    check_sha256(path, right)
    check_sha256(path, None)
    with pytest.raises(WeightsMismatch, match=rf"w.h5: sha256 is {right}.*expects 0{{64}}"):
        check_sha256(path, "0" * 64)


def pretrained_config(**changes):
    config = {
        "datasets": {"d": {"adapter": "folder", "path": "d"}},
        "tasks": {"t": {"dataset": "d"}},
        "sources": ["none", "rad"],
        "targets": ["t"],
        "methods": ["fe-svm"],
        "seeds": [1],
        "image_size": 32,
        "architectures": ["vgg16", "resnet50"],
        "pretrained": {"rad": {"architecture": "resnet50", "weights": "rad.h5"}},
    }
    config.update(changes)
    return config


def test_a_pretrained_source_runs_in_its_architectures_grid_only():
    config = pretrained_config()
    check_config(config)
    grids = architecture_grids(config)
    assert grids["resnet50"]["sources"] == ["none", "rad"]
    assert grids["vgg16"]["sources"] == ["none"]


def test_a_pretrained_source_whose_architecture_is_not_in_the_grid_is_refused():
    with pytest.raises(ConfigError, match=r"pretrained.rad.architecture: resnet50 is not among"):
        check_config(pretrained_config(architectures=["vgg16"]))
    with pytest.raises(ConfigError, match=r"pretrained.t: the name is taken"):
        check_config(pretrained_config(pretrained={"t": {"architecture": "vgg16",
                                                         "weights": "t.h5"}}))  # fmt: skip
