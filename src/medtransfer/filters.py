"""What a source network learned to see: activation maximisation of chosen filters (gradient
ascent on the input from noise, as the paper), its first-layer kernels, and an automatic
stand-in for the paper's by-eye count of "structural" filters.

Structural score: the share of a visualisation's spectral energy (DC removed) that lies in
its strongest 5 % of spatial frequencies. Noise spreads energy evenly (about 0.1-0.15);
stripes, edges and blobs concentrate it. A filter counts as structural when the share is at
least STRUCTURAL_THRESHOLD. It is a reproducible heuristic, not the paper's judgement.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .io import atomic_path

STRUCTURAL_THRESHOLD = 0.35
TOP_FREQUENCY_SHARE = 0.05


def maximise_activations(
    model: Any, layer: str, n_filters: int, steps: int, seed: int = 0, step_size: float = 10.0
) -> np.ndarray:
    """One input image per filter that maximises that filter's mean activation, all filters
    optimised together as one batch. Returns float images in the model's input range."""
    import keras

    from .jobs import PHASES

    sub = keras.Model(model.input, model.get_layer(layer).output)
    n = min(n_filters, sub.output.shape[-1])
    size = model.input_shape[1]
    rng = np.random.default_rng(seed)
    image = rng.uniform(108, 148, (n, size, size, 3)).astype("float32")
    pick = np.eye(sub.output.shape[-1], dtype="float32")[:n]

    def objective(x):
        activation = sub(x, training=False)
        mask = keras.ops.convert_to_tensor(pick, dtype=activation.dtype)
        return keras.ops.sum(keras.ops.mean(activation, axis=(1, 2)) * mask)

    gradient = GRADIENTS[keras.backend.backend()]
    for _ in range(steps):
        grads = gradient(objective, image)
        PHASES.mark("first_batch")  # tracing the gradient, plus one step
        norm = np.sqrt(np.mean(np.square(grads), axis=(1, 2, 3), keepdims=True)) + 1e-8
        image = image + step_size * grads / norm
    return image


def _tensorflow_gradient(objective, image: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    x = tf.convert_to_tensor(image)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = objective(x)
    return tape.gradient(loss, x).numpy()


def _jax_gradient(objective, image: np.ndarray) -> np.ndarray:
    import jax

    return np.asarray(jax.grad(objective)(image))


def _torch_gradient(objective, image: np.ndarray) -> np.ndarray:
    import keras

    x = keras.ops.convert_to_tensor(image).detach().clone().requires_grad_(True)
    objective(x).backward()
    return x.grad.detach().cpu().numpy()


# d objective / d input on each Keras backend (Keras 3 has no backend-neutral gradient)
GRADIENTS = {"tensorflow": _tensorflow_gradient, "jax": _jax_gradient, "torch": _torch_gradient}


def to_display(images: np.ndarray) -> np.ndarray:
    """Each image standardised and mapped to [0, 1] for display."""
    out = []
    for img in images:
        centred = (img - img.mean()) / (img.std() + 1e-8)
        out.append(np.clip(centred * 0.15 + 0.5, 0, 1))
    return np.stack(out)


def structural_score(image: np.ndarray) -> float:
    gray = image.mean(axis=-1)
    spectrum = np.abs(np.fft.fft2(gray - gray.mean())) ** 2
    energy = np.sort(spectrum.ravel())[::-1]
    top = max(1, int(len(energy) * TOP_FREQUENCY_SHARE))
    total = energy.sum()
    return float(energy[:top].sum() / total) if total > 0 else 0.0


def save_grid(images: np.ndarray, path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = int(np.ceil(np.sqrt(len(images))))
    rows = int(np.ceil(len(images) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.4 * cols, 1.4 * rows + 0.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, img, k in zip(axes.ravel(), images, range(len(images)), strict=False):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(str(k), fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def first_layer_kernels(model: Any, layer: str = "block1_conv1") -> np.ndarray:
    kernels = model.get_layer(layer).get_weights()[0]  # (k, k, 3, C)
    tiles = np.moveaxis(kernels, -1, 0)
    low = tiles.min(axis=(1, 2, 3), keepdims=True)
    high = tiles.max(axis=(1, 2, 3), keepdims=True)
    return (tiles - low) / np.maximum(high - low, 1e-8)


def visualise_source(
    model: Any,
    source: str,
    layers: list[str],
    n_filters: int,
    steps: int,
    grid_paths: dict[str, str],
    kernels_path: str,
    first_conv: str = "block1_conv1",
) -> dict[str, Any]:
    """Write one grid per layer and the kernel grid; return the structural scores."""
    scores: dict[str, list[float]] = {}
    names = {layer.name for layer in model.layers}
    for layer in layers:
        if layer not in names:
            raise ValueError(f"report.filter_layers: source {source} has no layer {layer!r}")
        shown = to_display(maximise_activations(model, layer, n_filters, steps))
        scores[layer] = [structural_score(img) for img in shown]
        save_grid(shown, grid_paths[layer], f"{source}: {layer} (activation maximisation)")
    kernels = first_layer_kernels(model, first_conv)
    save_grid(kernels, kernels_path, f"{source}: {first_conv} kernels")
    flat = [s for values in scores.values() for s in values]
    return {
        "source": source,
        "threshold": STRUCTURAL_THRESHOLD,
        "structural_percent": 100.0 * float(np.mean([s >= STRUCTURAL_THRESHOLD for s in flat])),
        "scores": scores,
    }
