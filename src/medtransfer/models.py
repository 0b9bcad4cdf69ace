"""The networks: VGG16 as the paper uses it (any input size >= 32 px, any width), and the
other architectures of `architectures` built from Keras' applications.

Layer names are Keras' own (VGG16: block1_conv1 ... block5_pool, flatten, fc1, fc2,
predictions), so feature layers and freezing are named the same for every source.
"""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import numpy as np
from keras import layers

from .architectures import DEFAULT_ARCHITECTURE, Architecture, architecture
from .errors import ConfigError
from .imagenet import uses_top
from .jobs import PHASES
from .pretrained import WeightsMismatch, keras3_weights, legacy_h5_weights, set_checked_weights

log = logging.getLogger(__name__)

BLOCKS = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))
DENSE_UNITS = 4096
# Keras' VGG16 uses Glorot init. Trained from scratch without batch norm, with SGD at the
# paper's lr 1e-3, a Glorot-initialised 16-layer ReLU network stays at chance for many epochs
# (measured: natural images, 32 px, 6 epochs, val accuracy 0.125 = 1/8); He init learns.
SCRATCH_INIT = "he_normal"
POOLED_LAYER = "block5_gap"  # ImageNet VGG16 below 224 px: no dense layers, pooled block5
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB, of images scaled to [0, 1]
IMAGENET_STD = (0.229, 0.224, 0.225)


@keras.saving.register_keras_serializable(package="medtransfer")
class CaffePreprocess(layers.Layer):
    """Keras' VGG16 ImageNet preprocessing inside the model: RGB -> BGR, minus the mean."""

    def call(self, inputs):
        bgr = keras.ops.flip(keras.ops.cast(inputs, self.compute_dtype), axis=-1)
        return bgr - keras.ops.convert_to_tensor(CAFFE_MEAN_BGR, dtype=self.compute_dtype)


@keras.saving.register_keras_serializable(package="medtransfer")
class TorchPreprocess(layers.Layer):
    """Keras' 'torch' ImageNet preprocessing (DenseNet) inside the model: scale to [0, 1],
    then standardise each RGB channel."""

    def call(self, inputs):
        x = keras.ops.cast(inputs, self.compute_dtype) / 255.0
        mean = keras.ops.convert_to_tensor(IMAGENET_MEAN, dtype=self.compute_dtype)
        return (x - mean) / keras.ops.convert_to_tensor(IMAGENET_STD, dtype=self.compute_dtype)


@keras.saving.register_keras_serializable(package="medtransfer")
class CaffeRescaledPreprocess(CaffePreprocess):
    """caffe, then divided by 255: what RadImageNet's published training code feeds its
    networks (ImageDataGenerator applies preprocess_input before rescale=1/255)."""

    def call(self, inputs):
        return super().call(inputs) / 255.0


PREPROCESSING = {
    "caffe": CaffePreprocess,
    "torch": TorchPreprocess,
    "radimagenet": CaffeRescaledPreprocess,
}


def scaled(units: int, width: float) -> int:
    return max(1, round(units * width))


def _head(x, n_classes: int, width: float, dense: bool = True):
    if dense:
        x = layers.Flatten(name="flatten")(x)
        for name in ("fc1", "fc2"):
            x = layers.Dense(
                scaled(DENSE_UNITS, width),
                activation="relu",
                kernel_initializer=SCRATCH_INIT,
                name=name,
            )(x)
    return _predictions(x, n_classes)


def build_vgg16(image_size: int, n_classes: int, width: float = 1.0) -> keras.Model:
    """VGG16 with random weights (seed them with keras.utils.set_random_seed first)."""
    check_size(architecture("vgg16"), image_size)
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = layers.Rescaling(1.0 / 255, name="preprocess")(inputs)
    for block, (convs, channels) in enumerate(BLOCKS, start=1):
        for conv in range(1, convs + 1):
            x = layers.Conv2D(
                scaled(channels, width),
                3,
                padding="same",
                activation="relu",
                kernel_initializer=SCRATCH_INIT,
                name=f"block{block}_conv{conv}",
            )(x)
        x = layers.MaxPooling2D(2, strides=2, name=f"block{block}_pool")(x)
    return keras.Model(inputs, _head(x, n_classes, width), name="vgg16")


def imagenet_vgg16(weights_path: str | Path, image_size: int) -> keras.Model:
    """Keras' ImageNet VGG16, flattened into one model with the preprocessing as its first layer.

    At 224 px it keeps fc1/fc2; at other sizes the dense layers cannot be used, so the
    features are the globally average-pooled block5 output (`block5_gap`).
    """
    return _applications_vgg16(image_size, uses_top(image_size), str(weights_path))


def _applications_vgg16(
    image_size: int, top: bool, weights: str | None, preprocessing: str = "caffe"
) -> keras.Model:
    base = keras.applications.VGG16(
        weights=weights, include_top=top, input_shape=(image_size, image_size, 3)
    )
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = PREPROCESSING[preprocessing](name="preprocess", dtype="float32")(inputs)
    for layer in base.layers[1:]:
        x = layer(x)
    if not top:
        x = layers.GlobalAveragePooling2D(name=POOLED_LAYER)(x)
    return keras.Model(inputs, x, name="vgg16_imagenet" if weights else "vgg16_pretrained")


def check_size(arch: Architecture, image_size: int) -> None:
    if image_size < arch.min_size:
        raise ConfigError(
            f"image_size: {image_size} px is below {arch.name}'s minimum of {arch.min_size}"
        )


def keras_body(
    arch: Architecture, image_size: int, weights: str | None, preprocessing: str | None = None
) -> keras.Model:
    """A Keras application without its classifier, globally average-pooled, with the family's
    ImageNet preprocessing (or the one named) inside: one flat model whose layers carry
    Keras' own names."""
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = inputs
    preprocessing = preprocessing or arch.preprocessing
    if preprocessing in PREPROCESSING:
        x = PREPROCESSING[preprocessing](name="preprocess", dtype="float32")(x)
    body = getattr(keras.applications, arch.keras_name)(
        weights=weights, include_top=False, input_tensor=x, pooling="avg"
    )
    if arch.feature_layer not in [layer.name for layer in body.layers]:
        # ConvNeXt's pooled features pass a LayerNormalization with an automatic name
        body.layers[-1].name = arch.feature_layer
    if arch.name == "efficientnetb0":
        _efficientnet_imagenet_normalisation(body)
    return keras.Model(inputs, body.output, name=arch.name)


def _efficientnet_imagenet_normalisation(model: keras.Model) -> None:
    """Keras' EfficientNet normalises by stddev**1.5 (an extra Rescaling it adds only for
    weights='imagenet', not for a weights file or random init); a variance of stddev**3 in
    its Normalization layer gives the same numbers for every source."""
    norm = next(la for la in model.layers if isinstance(la, layers.Normalization))
    count = norm.get_weights()[2]
    std = np.asarray(IMAGENET_STD, dtype=np.float32)
    norm.set_weights([np.asarray(IMAGENET_MEAN, dtype=np.float32), std**3, count])
    norm.finalize_state()  # the layer normalises with copies made from its weights


def build_network(arch: str, image_size: int, n_classes: int, width: float = 1.0) -> keras.Model:
    """An architecture with random weights and a softmax for n_classes (seed them with
    keras.utils.set_random_seed first). `width` scales VGG16 only."""
    spec = architecture(arch)
    if spec.name == "vgg16":
        return build_vgg16(image_size, n_classes, width)
    check_size(spec, image_size)
    if spec.builder == "medtransfer":
        from .lite0 import build_lite0

        return build_lite0(image_size, n_classes)
    body = keras_body(spec, image_size, None)
    return keras.Model(body.input, _predictions(body.output, n_classes), name=spec.name)


def imagenet_network(arch: str, weights_path: str | Path, image_size: int) -> keras.Model:
    """An architecture with its ImageNet weights: Keras' without the ImageNet classifier;
    EfficientNet-Lite0's from its package's file, with the classifier at 224 px."""
    spec = architecture(arch)
    if spec.name == "vgg16":
        return imagenet_vgg16(weights_path, image_size)
    check_size(spec, image_size)
    if spec.builder == "medtransfer":
        from .lite0 import imagenet_lite0

        return imagenet_lite0(image_size, weights_path)
    return keras_body(spec, image_size, str(weights_path))


def pretrained_body(arch: str, image_size: int, preprocessing: str | None) -> keras.Model:
    """The architecture's pooled-feature network at random init, for weights from a file
    (`pretrained`), with the input scaling those weights were trained with."""
    spec = architecture(arch)
    check_size(spec, image_size)
    if preprocessing and spec.preprocessing not in PREPROCESSING:
        raise ConfigError(
            f"preprocessing: {arch} scales its inputs inside Keras' own layers; a pretrained "
            f"{arch} cannot take another preprocessing ({preprocessing})"
        )
    if spec.name == "vgg16":
        return _applications_vgg16(image_size, False, None, preprocessing or "caffe")
    if spec.builder == "medtransfer":
        from .lite0 import build_lite0

        return build_lite0(image_size)
    return keras_body(spec, image_size, None, preprocessing)


def load_source(path: str | Path, image_size: int) -> keras.Model:
    """A saved source network, loaded safely, checked against the configured input size."""
    from . import lite0  # noqa: F401  (registers LiteNormalize, which Lite0 models hold)

    model = keras.saving.load_model(path, safe_mode=True, compile=False)
    found = model.input_shape[1]
    if found != image_size:
        raise ConfigError(
            f"source model {path} takes {found} px images but image_size is "
            f"{image_size}; rerun its pretrain job at {image_size} px"
        )
    return model


def pretrained_network(
    arch: str, path: str | Path, image_size: int, preprocessing: str | None = None
) -> keras.Model:
    """The architecture's pooled-feature network with the file's weights (a `.keras` model
    as it is, checked for its input size and the architecture's feature layer)."""
    path = Path(path)
    spec = architecture(arch)
    if path.name.endswith(".keras"):
        model = load_source(path, image_size)
        names = {layer.name for layer in model.layers}
        dense_features = {"fc2"} if spec.has_dense_head else set()
        if not ({spec.feature_layer} | dense_features) & names:
            raise WeightsMismatch(
                f"{path}: the model has no layer {spec.feature_layer!r}, where {arch}'s "
                f"features are taken; is it a {arch}? (pretrained entry's architecture)"
            )
        return model
    model = pretrained_body(arch, image_size, preprocessing)
    if path.name.endswith(".weights.h5"):
        weights = keras3_weights(path, model)
    elif path.suffix == ".h5":
        weights = legacy_h5_weights(path)
    else:
        raise ConfigError(f"{path}: pretrained weights must be .weights.h5, .h5 or .keras")
    set_checked_weights(model, weights, path)
    return model


def source_network(
    source: str,
    path: str | Path | None,
    image_size: int,
    width: float,
    seed: int,
    arch: str = DEFAULT_ARCHITECTURE,
) -> keras.Model:
    """The network a source provides: the architecture at random init ('none', seeded),
    Keras' ImageNet weights ('imagenet'), or a network trained by `pretrain` (any task).

    The one seed rule of the untrained network: frozen (extract, filters) it is seeded with
    the config's pretrain_seed, one network for every seed's FE runs as a source network
    is; fine-tuned, with the run's seed, so that each seed starts from its own init."""
    from .config import IMAGENET, NO_SOURCE

    if source == NO_SOURCE:
        keras.utils.set_random_seed(seed)
        return build_network(arch, image_size, 2, width)
    if path is None:
        raise ConfigError(f"source {source!r} needs its weights or model file")
    if source == IMAGENET:
        return imagenet_network(arch, path, image_size)
    return load_source(path, image_size)


def save_model(model: keras.Model, path: str | Path) -> None:
    """Save without optimizer state (a fresh functional model over the same layers),
    atomically."""
    from .io import atomic_path

    with atomic_path(path) as tmp:
        keras.Model(model.inputs, model.outputs, name=model.name).save(tmp)


def feature_layer_name(model: keras.Model, requested: str, arch: str = DEFAULT_ARCHITECTURE) -> str:
    """The configured feature layer where the network has it (VGG16's fc2), else the
    architecture's pooled last stage."""
    names = [layer.name for layer in model.layers]
    if requested in names:
        return requested
    spec = architecture(arch)
    pooled = POOLED_LAYER if spec.name == "vgg16" else spec.feature_layer
    if pooled in names:
        log.info("feature layer %s does not exist in %s; using %s", requested, model.name, pooled)
        return pooled
    raise ConfigError(
        f"feature_layer: {model.name} has no layer {requested!r}; layers: {', '.join(names)}"
    )


def _predictions(x, n_classes: int):
    # float32 softmax keeps mixed-precision training stable
    return layers.Dense(n_classes, activation="softmax", dtype="float32", name="predictions")(x)


def with_new_head(
    model: keras.Model,
    n_classes: int,
    random_dense: bool = False,
    arch: str = DEFAULT_ARCHITECTURE,
) -> keras.Model:
    """The source network with a fresh softmax for the target's classes.

    By default VGG16's fc1/fc2 keep the source's learned weights; `random_dense`
    re-initialises them, as wide as the source's own (Pal's comparison of random vs learned
    dense weights). The other architectures have no dense layers: the softmax sits on their
    pooled features.
    """
    spec = architecture(arch)
    if not spec.has_dense_head:
        if random_dense:
            raise ConfigError(f"methods: -randhead needs dense layers; {arch} has none")
        pooled = model.get_layer(spec.feature_layer).output
        return keras.Model(model.input, _predictions(pooled, n_classes), name=f"{arch}_finetune")
    names = [layer.name for layer in model.layers]
    if "fc2" in names and random_dense:
        width = model.get_layer("fc1").units / DENSE_UNITS
        body = model.get_layer("block5_pool").output
        return keras.Model(model.input, _head(body, n_classes, width), name="vgg16_finetune")
    top = model.get_layer("fc2" if "fc2" in names else POOLED_LAYER).output
    return keras.Model(model.input, _predictions(top, n_classes), name="vgg16_finetune")


def trainable_stages(variant: str, n_stages: int) -> set[int] | None:
    """The stages a fine-tuning variant trains; None: all of them."""
    mode = variant.removesuffix("-randhead")
    return {"all": None, "last": {n_stages}, "first": {1}, "firstlast": {1, n_stages}}[mode]


def set_trainable(model: keras.Model, variant: str, arch: str = DEFAULT_ARCHITECTURE) -> None:
    """Freeze every stage the variant does not name; the head always trains. A frozen
    batch-norm layer also runs in inference mode (Keras 3 ties both to `trainable`), so its
    moving statistics stay the source's."""
    spec = architecture(arch)
    stages = trainable_stages(variant, spec.n_stages)
    for layer in model.layers:
        stage = spec.stage_of(layer.name)
        layer.trainable = stages is None or stage is None or stage in stages


def feature_model(model: keras.Model, layer: str) -> keras.Model:
    return keras.Model(model.input, model.get_layer(layer).output)


def predict_in_chunks(
    model: keras.Model, images: np.ndarray, batch_size: int = 64, rows: np.ndarray | None = None
) -> np.ndarray:
    """Outputs for a (memory-mapped) uint8 array, reading `batch_size` images at a time."""
    (out,) = predict_outputs(model, images, batch_size, rows)
    return out


def forward_pass(model: keras.Model):
    """The model's inference on one float32 batch, as `predict_on_batch` computes it.

    On TensorFlow, `predict_on_batch` traces the forward pass again for every new batch
    size: a job that reads one image, then full batches, then a smaller last batch traced
    each network three times (about 1 s of a 32-px VGG16 job's 2 s after training). Here it
    is traced once for any batch size; the graph is Keras' own `predict_step`, so the numbers
    are the same. JAX and PyTorch keep Keras' call."""
    if keras.backend.backend() != "tensorflow":
        return model.predict_on_batch
    import tensorflow as tf

    return tf.function(  # tensors out: predict_outputs makes the arrays
        lambda x: model.predict_step((x,)),
        input_signature=[tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)],
        jit_compile=bool(model.jit_compile),
        # as Keras traces its own steps: AutoGraph would write a source file into the
        # temporary folder per job and leave it there (hundreds a day on a grid)
        autograph=False,
    )


def predict_outputs(
    model: keras.Model,
    images: np.ndarray,
    batch_size: int = 64,
    rows: np.ndarray | None = None,
    reduce=None,
) -> list[np.ndarray]:
    """Every output of a (multi-output) model for a uint8 array, `batch_size` images at a
    time, each output passed through `reduce` per batch (e.g. spatial pooling) if given."""
    rows = np.arange(len(images)) if rows is None else np.asarray(rows)
    reduce = reduce or (lambda x: x)

    forward = forward_pass(model)

    def batch_outputs(chosen: np.ndarray) -> list[np.ndarray]:
        found = forward(np.asarray(images[chosen], dtype=np.float32))
        found = found if isinstance(found, (list, tuple)) else [found]
        return [reduce(np.asarray(x, dtype=np.float32)) for x in found]

    first = batch_outputs(rows[:1])
    PHASES.mark("first_batch")  # tracing or compiling the forward pass, plus one image
    outs = [np.empty((len(rows), *x.shape[1:]), dtype=np.float32) for x in first]
    for start in range(0, len(rows), batch_size):
        for out, part in zip(outs, batch_outputs(rows[start : start + batch_size]), strict=True):
            out[start : start + len(part)] = part
    return outs


def stage_output_layers(model: keras.Model, arch: str = DEFAULT_ARCHITECTURE) -> list[str]:
    """The last layer of each stage (block) in the model's order: where a stage's output is
    read for the feature-reuse probes."""
    spec = architecture(arch)
    last: dict[int, str] = {}
    for layer in model.layers:
        stage = spec.stage_of(layer.name)
        if stage is not None:
            last[stage] = layer.name
    return [last[stage] for stage in sorted(last)]


def has_source_classes(model: keras.Model, source: str) -> bool:
    """Whether the source network ends in a softmax over classes of its own (a trained
    source; ImageNet VGG16 with its top): LEEP and NCE need it."""
    from .config import NO_SOURCE

    return source != NO_SOURCE and model.layers[-1].name == "predictions"


def extract_model(
    model: keras.Model, feature_layer: str, arch: str, source: str
) -> tuple[keras.Model, list[str]]:
    """One forward pass for `extract`: the features, every stage's globally average-pooled
    output (the k-NN probe) and, where the source has classes, its softmax (LEEP, NCE).
    Returns the model and its output names."""
    stages = stage_output_layers(model, arch)
    outputs = [model.get_layer(feature_layer).output]
    names = ["features"]
    for index, name in enumerate(stages, start=1):
        tensor = model.get_layer(name).output
        if len(tensor.shape) == 4:
            tensor = layers.GlobalAveragePooling2D(name=f"probe_gap{index}")(tensor)
        outputs.append(tensor)
        names.append(f"stage{index}_{name}")
    if has_source_classes(model, source):
        outputs.append(model.outputs[0])  # a loaded model's `output` is a list of one
        names.append("source_softmax")
    return keras.Model(model.input, outputs), names


def pool_to_side(activations: np.ndarray, side: int) -> np.ndarray:
    """Average-pool (n, h, w, c) maps wider than `side` by the smallest integer factor that
    brings them to at most `side` (rows and columns past a multiple of it are dropped)."""
    if activations.ndim != 4 or max(activations.shape[1:3]) <= side:
        return activations
    f = -(-max(activations.shape[1:3]) // side)
    n, h, w, c = activations.shape
    cropped = activations[:, : h // f * f, : w // f * f]
    return cropped.reshape(n, h // f, f, w // f, f, c).mean(axis=(2, 4))


def stage_grams(
    model: keras.Model,
    images: np.ndarray,
    rows: np.ndarray,
    arch: str,
    max_side: int,
    batch_size: int = 32,
) -> tuple[list[str], list[np.ndarray]]:
    """The linear-kernel Gram matrix (n x n) of each stage's output on the chosen images:
    what linear CKA compares between the source and the fine-tuned network."""
    from .transferability import gram

    stages = stage_output_layers(model, arch)
    probe = keras.Model(model.input, [model.get_layer(name).output for name in stages])
    outs = predict_outputs(
        probe, images, batch_size, rows, reduce=lambda x: pool_to_side(x, max_side)
    )
    return stages, [gram(out) for out in outs]


def sample_features(
    model: keras.Model,
    images: np.ndarray,
    requested: str,
    rows: np.ndarray,
    arch: str = DEFAULT_ARCHITECTURE,
) -> np.ndarray:
    """Features of the chosen images (source-target similarity needs a sample of the
    source's images, not all of them)."""
    layer = feature_layer_name(model, requested, arch)
    return predict_in_chunks(feature_model(model, layer), images, rows=np.asarray(rows))
