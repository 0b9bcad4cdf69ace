"""The filters report on its own: the structural score on images whose answer is known,
activation maximisation on a real (small) VGG16, and the files it writes."""

import numpy as np
import pytest

from medtransfer.filters import (
    STRUCTURAL_THRESHOLD,
    first_layer_kernels,
    structural_score,
    to_display,
    visualise_source,
)


def test_stripes_are_structural_and_noise_is_not():
    x = np.arange(32)
    stripes = np.repeat(np.sin(x / 2.0)[None, :, None], 32, axis=0).repeat(3, axis=2)
    noise = np.random.default_rng(0).normal(size=(32, 32, 3))
    assert structural_score(to_display(stripes[None])[0]) > 0.9
    assert structural_score(to_display(noise[None])[0]) < STRUCTURAL_THRESHOLD
    assert structural_score(np.zeros((8, 8, 3))) == 0.0  # a flat image has no energy


def test_display_maps_every_image_into_the_unit_range():
    images = np.random.default_rng(1).normal(scale=50, size=(3, 8, 8, 3))
    shown = to_display(images)
    assert shown.shape == images.shape and shown.min() >= 0 and shown.max() <= 1


def test_a_small_vgg16_writes_its_grids_kernels_and_scores(tmp_path):
    keras = pytest.importorskip("keras")
    from medtransfer.models import build_vgg16

    keras.utils.set_random_seed(0)
    model = build_vgg16(32, 2, width=0.125)
    kernels = first_layer_kernels(model)
    assert kernels.shape == (8, 3, 3, 3) and kernels.min() >= 0 and kernels.max() <= 1
    grids = {"block1_conv2": str(tmp_path / "b1.png")}
    result = visualise_source(model, "none", list(grids), 4, 3, grids, str(tmp_path / "k.png"))
    assert len(result["scores"]["block1_conv2"]) == 4
    assert 0 <= result["structural_percent"] <= 100
    assert (tmp_path / "b1.png").stat().st_size > 1000 and (tmp_path / "k.png").is_file()
    with pytest.raises(ValueError, match="source none has no layer 'fc9'"):
        visualise_source(model, "none", ["fc9"], 4, 3, {}, str(tmp_path / "k.png"))
