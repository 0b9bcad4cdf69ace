"""Every architecture of the grid, built for real (random weights): sizes, feature layers,
stages for partial fine-tuning, ImageNet preprocessing, batch norm under freezing."""

from __future__ import annotations

import functools

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from medtransfer import imagenet  # noqa: E402
from medtransfer.architectures import ARCHITECTURES, architecture  # noqa: E402
from medtransfer.config import ConfigError, check_config  # noqa: E402
from medtransfer.models import (  # noqa: E402
    build_network,
    feature_layer_name,
    feature_model,
    imagenet_network,
    load_source,
    save_model,
    set_trainable,
    with_new_head,
)

FEATURE_DIMS = {"vgg16": 512, "resnet50": 2048, "densenet121": 1024, "efficientnetb0": 1280,
                "convnext_tiny": 768, "efficientnet_lite0": 1280}  # fmt: skip
# (first layer with weights of the first stage, of the last stage) in Keras' own names
STAGE_ENDS = {
    "vgg16": ("block1_conv1", "block5_conv3"),
    "resnet50": ("conv1_conv", "conv5_block3_3_bn"),
    "densenet121": ("conv1_conv", "bn"),
    "efficientnetb0": ("stem_conv", "top_bn"),
    "efficientnet_lite0": ("stem_conv", "top_bn"),
    "convnext_tiny": ("convnext_tiny_stem", "convnext_tiny_stage_3_block_2_layer_scale"),
}
RGB = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")


@pytest.mark.parametrize(
    "arch", ["resnet50", "densenet121", "efficientnetb0", "convnext_tiny", "efficientnet_lite0"]
)
@pytest.mark.parametrize("size", [32, 224])
def test_builds_at_minimum_and_full_size_with_pooled_features(arch, size):
    spec = architecture(arch)
    assert spec.min_size == 32
    model = build_network(arch, size, 3)
    layer = feature_layer_name(model, "fc2", arch)
    assert layer == spec.feature_layer
    features = feature_model(model, layer)
    assert features.output_shape == (None, FEATURE_DIMS[arch])
    assert model.output_shape == (None, 3)
    if size == 32:
        out = features.predict_on_batch(RGB)
        assert out.shape == (2, FEATURE_DIMS[arch]) and np.isfinite(out).all()


def test_vgg16_keeps_fc2_at_every_size():
    for size in (32, 224):
        model = build_network("vgg16", size, 3, width=0.125)
        assert feature_layer_name(model, "fc2", "vgg16") == "fc2"


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_below_the_minimum_size_is_a_config_error_naming_both(arch):
    with pytest.raises(ConfigError, match=rf"image_size: 31 px is below {arch}'s minimum"):
        build_network(arch, 31, 2)


@functools.cache
def headed_network(arch: str):
    return with_new_head(build_network(arch, 32, 4, width=0.125), 3, arch=arch)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize("variant", ["all", "first", "last", "firstlast"])
def test_freezing_trains_the_declared_stages_and_always_the_head(arch, variant):
    spec = architecture(arch)
    model = headed_network(arch)  # one per architecture: set_trainable sets every layer
    set_trainable(model, variant, arch)
    last = spec.n_stages
    wanted = {"all": set(range(1, last + 1)), "first": {1}, "last": {last},
              "firstlast": {1, last}}[variant]  # fmt: skip
    weighted = [layer for layer in model.layers if layer.trainable_weights or layer.weights]
    seen = set()
    for layer in weighted:
        stage = spec.stage_of(layer.name)
        seen.add(stage)
        if stage is not None:
            assert layer.trainable == (stage in wanted), (layer.name, stage)
    assert seen >= set(range(1, last + 1)), "a stage without layers"
    assert model.get_layer("predictions").trainable
    first, final = STAGE_ENDS[arch]
    assert spec.stage_of(first) == 1 and spec.stage_of(final) == last
    assert model.get_layer(first).trainable == (1 in wanted)
    assert model.get_layer(final).trainable == (last in wanted)


@pytest.mark.parametrize(
    ("arch", "family"), [("resnet50", "resnet50"), ("densenet121", "densenet")]
)
def test_preprocessing_matches_keras_preprocess_input(arch, family):
    model = build_network(arch, 32, 2)
    ours = keras.ops.convert_to_numpy(model.get_layer("preprocess")(RGB))
    reference = getattr(keras.applications, family).preprocess_input(RGB.copy())
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-4)


def test_vgg16_imagenet_preprocessing_matches_keras():
    from medtransfer.models import CaffePreprocess

    ours = keras.ops.convert_to_numpy(CaffePreprocess()(RGB))
    reference = keras.applications.vgg16.preprocess_input(RGB.copy())
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-4)


def output_of(model, layer_name, images):
    return keras.Model(model.input, model.get_layer(layer_name).output).predict_on_batch(images)


def test_efficientnet_normalises_inside_as_keras_imagenet_does(tmp_path):
    """Keras' EfficientNet preprocess_input is the identity: the model scales, normalises
    and (for ImageNet weights) divides once more by sqrt(stddev)."""
    from keras.src.applications import efficientnet

    np.testing.assert_array_equal(keras.applications.efficientnet.preprocess_input(RGB), RGB)
    model = build_network("efficientnetb0", 32, 2)
    norm = next(la for la in model.layers if isinstance(la, keras.layers.Normalization))
    std = np.asarray(efficientnet.IMAGENET_STDDEV_RGB)
    mean = np.asarray([0.485, 0.456, 0.406])
    expected = (RGB / 255.0 - mean) / std / np.sqrt(std)
    np.testing.assert_allclose(output_of(model, norm.name, RGB), expected, rtol=1e-4, atol=1e-4)
    save_model(model, tmp_path / "source.keras")  # a pretrained source keeps it
    loaded = load_source(tmp_path / "source.keras", 32)
    np.testing.assert_allclose(output_of(loaded, norm.name, RGB), expected, rtol=1e-4, atol=1e-4)


def test_convnext_normalises_inside_as_keras_does():
    np.testing.assert_array_equal(keras.applications.convnext.preprocess_input(RGB), RGB)
    model = build_network("convnext_tiny", 32, 2)
    mean, std = np.array([0.485, 0.456, 0.406]) * 255, np.array([0.229, 0.224, 0.225]) * 255
    np.testing.assert_allclose(
        output_of(model, "convnext_tiny_prestem_normalization", RGB),
        (RGB - mean) / std,
        rtol=1e-4,
        atol=1e-4,
    )


@pytest.mark.slow  # trains two networks: 17 s
@pytest.mark.parametrize("arch", ["resnet50", "efficientnetb0"])
def test_frozen_batch_norm_keeps_its_statistics_and_runs_in_inference_mode(arch):
    """The Keras transfer-learning guide's rule: BN layers of frozen stages must not update
    their moving mean/variance, and must normalise with them during training."""
    spec = architecture(arch)
    keras.utils.set_random_seed(1)
    model = with_new_head(build_network(arch, 32, 3), 3, arch=arch)
    set_trainable(model, "last", arch)
    bns = [la for la in model.layers if isinstance(la, keras.layers.BatchNormalization)]
    frozen = next(la for la in bns if spec.stage_of(la.name) == 1)
    trained = next(la for la in bns if spec.stage_of(la.name) == spec.n_stages)
    before = {la.name: [w.copy() for w in la.get_weights()] for la in (frozen, trained)}
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy")
    images = np.random.default_rng(2).uniform(0, 255, (16, 32, 32, 3)).astype("float32")
    model.fit(images, np.arange(16) % 3, batch_size=8, epochs=1, verbose=0)
    for old, new in zip(before[frozen.name], frozen.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
    pairs = zip(before[trained.name], trained.get_weights(), strict=True)
    moved = [not np.array_equal(old, new) for old, new in pairs]
    assert any(moved), "the trainable stage's batch norm did not train"
    probe = keras.Model(model.input, model.get_layer(frozen.name).output)
    np.testing.assert_allclose(
        probe(images, training=True), probe(images, training=False), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("arch", ["vgg16", "resnet50", "efficientnetb0"])
def test_imagenet_weights_load_from_the_keras_cache(tmp_path, monkeypatch, arch):
    """Keras' published files are legacy HDF5: write one of that format (random weights;
    the real file cannot be downloaded here) where Keras caches downloads and load it
    through the workflow's path, fetch_weights -> imagenet_network (under the name the
    fetch_imagenet job gives its copy)."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    spec = architecture(arch)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    folder = tmp_path / "keras" / "models"
    folder.mkdir(parents=True)
    keras.utils.set_random_seed(3)
    reference = getattr(keras.applications, spec.keras_name)(
        weights=None, include_top=False, input_shape=(32, 32, 3), pooling="avg"
    )
    with pytest.raises(imagenet.WeightsUnavailable, match=spec.notop.name):
        imagenet.fetch_weights(32, arch=arch)
    with h5py.File(folder / spec.notop.name, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, reference)
    path = imagenet.fetch_weights(32, arch=arch)
    assert path == folder / spec.notop.name
    workflow_copy = tmp_path / "weights_32px.h5"
    workflow_copy.write_bytes(path.read_bytes())
    model = imagenet_network(arch, workflow_copy, 32)
    conv = [la for la in reference.layers if isinstance(la, keras.layers.Conv2D)][-1].name
    np.testing.assert_array_equal(
        model.get_layer(conv).get_weights()[0], reference.get_layer(conv).get_weights()[0]
    )
    assert model.output_shape == (None, FEATURE_DIMS[arch])
    # below 224 px VGG16 has no ImageNet dense layers: its features are pooled block5
    assert feature_layer_name(model, "fc2", arch) == spec.feature_layer


def test_randhead_on_a_network_without_dense_layers_is_a_config_error():
    config = {
        "datasets": {"d": {"adapter": "folder", "path": "x"}},
        "tasks": {"t": {"dataset": "d"}},
        "sources": ["none"],
        "targets": ["t"],
        "methods": ["ft-randhead-svm"],
        "seeds": [0],
        "image_size": 32,
        "architectures": ["vgg16", "resnet50"],
    }
    with pytest.raises(ConfigError, match="resnet50 has none"):
        check_config(config)
    config["architectures"] = ["vgg16", {"name": "resnet50", "methods": ["ft-svm"]}]
    with pytest.raises(ConfigError, match=r"architectures.resnet50.methods: \['ft-svm'\]"):
        check_config(config)
    config["methods"] = ["ft-randhead-svm", "ft-svm"]
    check_config(config)
    config["architectures"] = ["vgg16", "alexnet"]
    with pytest.raises(ConfigError, match="unknown architecture 'alexnet'"):
        check_config(config)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_mixed_precision_keeps_preprocessing_and_softmax_in_float32(arch):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_network(arch, 32, 3, width=0.125)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.get_layer("predictions").dtype_policy.compute_dtype == "float32"
    assert model.output.dtype == "float32"
    if "preprocess" in [layer.name for layer in model.layers] and arch != "vgg16":
        assert model.get_layer("preprocess").dtype_policy.compute_dtype == "float32"
    convs = [la for la in model.layers if isinstance(la, keras.layers.Conv2D)]
    assert convs[0].dtype_policy.compute_dtype == "float16"  # the body does run in half
