"""Real Keras models: the VGG16 builder, ImageNet's offline error, freezing, resumable training."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from medtransfer import imagenet  # noqa: E402
from medtransfer.config import ConfigError  # noqa: E402
from medtransfer.models import (  # noqa: E402
    build_network,
    build_vgg16,
    feature_layer_name,
    load_source,
    save_model,
    set_trainable,
    source_network,
    with_new_head,
)
from medtransfer.training import TrainingDiverged, train  # noqa: E402

KERAS_NAMES = [
    "block1_conv1",
    "block1_conv2",
    "block1_pool",
    "block2_conv1",
    "block2_conv2",
    "block2_pool",
    "block3_conv1",
    "block3_conv2",
    "block3_conv3",
    "block3_pool",
    "block4_conv1",
    "block4_conv2",
    "block4_conv3",
    "block4_pool",
    "block5_conv1",
    "block5_conv2",
    "block5_conv3",
    "block5_pool",
    "flatten",
    "fc1",
    "fc2",
    "predictions",
]


def test_vgg16_has_keras_layer_names_at_any_width():
    model = build_vgg16(32, 3, width=0.25)
    names = [layer.name for layer in model.layers]
    assert names[-len(KERAS_NAMES) :] == KERAS_NAMES
    assert model.get_layer("block1_conv1").filters == 16
    assert model.get_layer("fc2").units == 1024
    assert model.output_shape == (None, 3)


def test_full_width_vgg16_matches_keras_parameter_count_of_the_body():
    ours = build_vgg16(224, 1000, width=1.0)
    reference = keras.applications.VGG16(weights=None, include_top=True)
    assert ours.count_params() == reference.count_params()


def test_imagenet_offline_error_names_file_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(imagenet.WeightsUnavailable) as error:
        imagenet.fetch_weights(32)
    message = str(error.value)
    assert "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert str(tmp_path / "keras" / "models") in message
    assert "vgg16_weights_tf_dim_ordering_tf_kernels.h5" in imagenet.missing_message(224)


def test_new_head_keeps_source_dense_weights_unless_asked():
    keras.utils.set_random_seed(0)
    source = build_vgg16(32, 8, width=0.125)
    fc2 = source.get_layer("fc2").get_weights()[0].copy()
    kept = with_new_head(source, 3)
    assert np.array_equal(kept.get_layer("fc2").get_weights()[0], fc2)
    assert kept.output_shape == (None, 3)
    fresh = with_new_head(build_vgg16(32, 8, width=0.125), 3, random_dense=True)
    assert fresh.get_layer("fc2").get_weights()[0].shape == fc2.shape


@pytest.mark.parametrize(
    ("variant", "trainable_blocks"),
    [("all", {1, 2, 3, 4, 5}), ("last", {5}), ("first", {1}), ("firstlast-randhead", {1, 5})],
)
def test_freezing_variants(variant, trainable_blocks):
    model = build_vgg16(32, 2, width=0.125)
    set_trainable(model, variant)
    blocks = {
        int(la.name[5])
        for la in model.layers
        if la.name.startswith("block") and la.trainable and la.weights
    }
    assert blocks == trainable_blocks
    assert model.get_layer("fc2").trainable and model.get_layer("predictions").trainable


def test_source_with_other_input_size_is_refused(tmp_path):
    path = tmp_path / "model.keras"
    build_vgg16(64, 2, width=0.125).save(path)
    with pytest.raises(ConfigError, match=r"takes 64 px images but image_size is 32"):
        load_source(path, 32)


def test_each_source_provides_its_network(tmp_path):
    first = source_network("none", None, 32, 0.125, seed=3)
    again = source_network("none", None, 32, 0.125, seed=3)
    other = source_network("none", None, 32, 0.125, seed=4)
    kernel = first.get_layer("block1_conv1").get_weights()[0]
    np.testing.assert_array_equal(kernel, again.get_layer("block1_conv1").get_weights()[0])
    assert not np.array_equal(kernel, other.get_layer("block1_conv1").get_weights()[0])
    trained = build_vgg16(32, 3, width=0.125)
    compiled = keras.Model(trained.inputs, trained.outputs)
    compiled.compile(optimizer="sgd", loss="categorical_crossentropy")
    save_model(compiled, tmp_path / "source.keras")
    loaded = source_network("natural", tmp_path / "source.keras", 32, 0.125, seed=0)
    assert loaded.output_shape == (None, 3) and getattr(loaded, "optimizer", None) is None
    with pytest.raises(ConfigError, match="source 'imagenet' needs its weights"):
        source_network("imagenet", None, 32, 1.0, seed=0)


def test_feature_layer_must_exist():
    with pytest.raises(ConfigError, match="no layer 'fc9'"):
        feature_layer_name(build_vgg16(32, 2, width=0.125), "fc9")


SETTINGS = {
    "epochs": 3,
    "patience": 10,
    "learning_rate": 0.01,
    "momentum": 0.9,
    "nesterov": True,
    "batch_size": 16,
    "keep_best": False,
    "class_weights": True,
}


def _data():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (60, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(60) % 2
    images[labels == 1, :16] = 255  # a learnable difference
    split = {"train": list(range(40)), "val": list(range(40, 50)), "class_weights": [1.0, 1.0]}
    return images, labels, split


def _fresh_model(arch="vgg16"):
    keras.utils.set_random_seed(7)
    if arch == "batchnorm":  # the smallest network with moving statistics (traces in ~1 s)
        layers = keras.layers
        return keras.Sequential(
            [
                keras.Input((32, 32, 3)),
                layers.Rescaling(1 / 255),
                layers.Conv2D(4, 3, strides=2),
                layers.BatchNormalization(),
                layers.ReLU(),
                layers.GlobalAveragePooling2D(),
                layers.Dense(2, activation="softmax"),
            ]
        )
    return build_network(arch, 32, 2, width=0.125)


# VGG16 as the paper; a batch-norm network, whose moving statistics (weights that are not
# trained) must resume too. The workflow-level kill test: test_reliability.py.
@pytest.mark.slow  # three trainings per network: 18 s
@pytest.mark.parametrize("arch", ["vgg16", "batchnorm"])
def test_training_resumes_after_a_kill_to_the_same_weights(tmp_path, arch):
    images, labels, split = _data()
    straight, state = train(
        _fresh_model(arch), images, labels, split, SETTINGS, 7, tmp_path / "straight"
    )
    assert state.next_epoch == 3 and len(state.history) == 3
    # 'Kill' after the first epoch: a job that stopped there left only its checkpoint.
    _, first = train(
        _fresh_model(arch), images, labels, split, {**SETTINGS, "epochs": 1}, 7, tmp_path / "k"
    )
    resumed, resumed_state = train(
        _fresh_model(arch), images, labels, split, SETTINGS, 7, tmp_path / "k"
    )
    # batch norm's moving statistics are among the weights compared below, and moved
    moving = [w for w in straight.weights if "moving_mean" in w.path]
    assert arch == "vgg16" or np.abs(keras.ops.convert_to_numpy(moving[0])).sum() > 0
    assert [h["epoch"] for h in resumed_state.history] == [1, 2, 3]
    # the training time counts the epoch before the kill too
    assert resumed_state.train_seconds > first.train_seconds > 0
    for a, b in zip(straight.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_early_stopping_and_best_epoch(tmp_path):
    images, labels, split = _data()
    settings = {**SETTINGS, "epochs": 30, "patience": 1, "learning_rate": 0.05}
    _, state = train(_fresh_model(), images, labels, split, settings, 0, tmp_path / "es")
    assert state.stopped_early and state.next_epoch < 30
    assert (
        state.best_epoch
        == min(range(len(state.history)), key=lambda i: state.history[i]["val_loss"]) + 1
    )


def test_diverged_training_fails_clearly(tmp_path):
    images, labels, split = _data()
    settings = {**SETTINGS, "learning_rate": 1e6}
    with pytest.raises(TrainingDiverged, match="diverged at epoch 1.*lower learning_rate"):
        train(_fresh_model(), images, labels, split, settings, 0, tmp_path / "nan")


def test_extract_model_gives_features_stages_and_a_trained_sources_softmax(tmp_path, monkeypatch):
    import tempfile

    from medtransfer.models import extract_model, predict_outputs

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # what a job leaves
    (tmp_path / "tmp").mkdir()

    save_model(build_vgg16(32, 3, width=0.125), tmp_path / "source.keras")
    trained = source_network("natural", tmp_path / "source.keras", 32, 0.125, seed=0)
    images = np.random.default_rng(0).integers(0, 255, (5, 32, 32, 3), dtype=np.uint8)
    network, names = extract_model(trained, "fc2", "vgg16", "natural")
    outputs = dict(zip(names, predict_outputs(network, images, batch_size=2), strict=True))
    assert list(outputs) == ["features", *(f"stage{i}_block{i}_pool" for i in range(1, 6)),
                             "source_softmax"]  # fmt: skip
    assert outputs["features"].shape == (5, 512)
    assert outputs["stage1_block1_pool"].shape == (5, 8)  # pooled: one value per channel
    np.testing.assert_allclose(outputs["source_softmax"], trained.predict(images, verbose=0),
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    assert list((tmp_path / "tmp").iterdir()) == [], "AutoGraph's files left behind"
    untrained = source_network("none", None, 32, 0.125, seed=0)
    assert "source_softmax" not in extract_model(untrained, "fc2", "vgg16", "none")[1]


def test_stage_grams_see_a_change_of_weights_only_where_it_happened():
    from medtransfer.models import pool_to_side, stage_grams
    from medtransfer.transferability import cka

    model = source_network("none", None, 32, 0.125, seed=0)
    images = np.random.default_rng(1).integers(0, 255, (12, 32, 32, 3), dtype=np.uint8)
    rows = np.arange(12)
    stages, before = stage_grams(model, images, rows, "vgg16", max_side=32)
    kernel, bias = model.get_layer("block5_conv3").get_weights()
    model.get_layer("block5_conv3").set_weights([np.random.default_rng(2).normal(size=kernel.shape)
                                                 .astype("float32"), bias])  # fmt: skip
    _, after = stage_grams(model, images, rows, "vgg16", max_side=8)
    similarity = [cka(old, new) for old, new in zip(before, after, strict=True)]
    assert stages == [f"block{i}_pool" for i in range(1, 6)]
    assert similarity[3] == pytest.approx(1.0)  # block4: 2x2 maps, not pooled, unchanged
    assert similarity[4] < 0.99  # block5's last convolution was replaced
    assert pool_to_side(np.ones((2, 33, 33, 4)), 16).shape == (2, 11, 11, 4)


def test_imagenet_download_is_tried_where_the_url_answers(tmp_path, monkeypatch):
    """The plan keeps ImageNet where its file's URL answers and says why where it does not."""
    import functools
    import http.server
    import threading

    from medtransfer.architectures import WeightsFile

    (tmp_path / "w.h5").write_bytes(b"weights")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/"
    try:
        monkeypatch.setattr(imagenet, "weights_file", lambda *_: WeightsFile("w.h5", url + "w.h5"))
        assert imagenet.download_problem(224) is None
        monkeypatch.setattr(imagenet, "weights_file", lambda *_: WeightsFile("x.h5", url + "x.h5"))
        assert "did not answer from this machine" in imagenet.download_problem(224)
    finally:
        server.shutdown()
