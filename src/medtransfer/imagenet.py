"""Where Keras' VGG16 ImageNet weights live, and the clear error when they cannot be had.

Kept free of TensorFlow imports: the Snakefile asks it at parse time.
"""

from __future__ import annotations

import os
from pathlib import Path

WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
WEIGHTS_TOP = "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
WEIGHTS_NOTOP = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
# md5 of Keras' published files (keras/src/applications/vgg16.py)
WEIGHTS_MD5 = {
    WEIGHTS_TOP: "64373286793e3c8b2b4e3219cbf3544b",
    WEIGHTS_NOTOP: "6d6bbae143d832006294945121d1f1fc",
}
IMAGENET_SIZE = 224


class WeightsUnavailable(RuntimeError):
    """The ImageNet weights are neither cached nor downloadable."""


def uses_top(image_size: int) -> bool:
    """The dense layers (fc1, fc2) of the ImageNet VGG16 exist only at 224 px input."""
    return image_size == IMAGENET_SIZE


def weights_filename(image_size: int) -> str:
    return WEIGHTS_TOP if uses_top(image_size) else WEIGHTS_NOTOP


def weights_dir(configured: str | None = None) -> Path:
    """The folder Keras downloads into: $KERAS_HOME/models, default ~/.keras/models."""
    if configured:
        return Path(configured).expanduser()
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")).expanduser() / "models"


def cached_weights(image_size: int, configured_dir: str | None = None) -> Path | None:
    path = weights_dir(configured_dir) / weights_filename(image_size)
    return path if path.is_file() else None


def missing_message(image_size: int, configured_dir: str | None = None) -> str:
    name = weights_filename(image_size)
    folder = weights_dir(configured_dir)
    return (
        f"VGG16 ImageNet weights are not available: put the file {name} "
        f"(download it from {WEIGHTS_URL}{name}) into the folder {folder}/ "
        f"(or set imagenet.weights_dir in the config). This machine could not download it."
    )


def fetch_weights(image_size: int, configured_dir: str | None = None) -> Path:
    """The weights file, downloaded by Keras into its cache if it is not there yet."""
    cached = cached_weights(image_size, configured_dir)
    if cached:
        return cached
    import keras

    name = weights_filename(image_size)
    folder = weights_dir(configured_dir)
    try:
        return Path(
            keras.utils.get_file(
                name,
                WEIGHTS_URL + name,
                cache_dir=str(folder.parent),
                cache_subdir=folder.name,
                file_hash=WEIGHTS_MD5[name],
            )
        )
    except Exception as error:  # URL, socket and hash errors all mean: not available here
        raise WeightsUnavailable(missing_message(image_size, configured_dir)) from error
