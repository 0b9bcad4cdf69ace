"""Process-wide settings that must be made before Keras and its backend start: the backend
itself (TensorFlow, JAX or PyTorch), threads, determinism, GPU choice and memory, mixed
precision."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import importlib.util
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
_held_locks: list[int] = []


@functools.cache  # a Keras job reads it twice (claim_gpu, host); the machine's GPUs stay
def gpu_listing() -> str:
    """`nvidia-smi -L`: a line per GPU of the machine ("GPU 0: NVIDIA H200 (UUID: GPU-…)");
    empty where there is none or no driver."""
    if not shutil.which("nvidia-smi"):
        return ""
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout


def visible_gpu_count() -> int:
    return sum(line.startswith("GPU ") for line in gpu_listing().splitlines())


def visible_gpu_names(listing: str, visible: str | None) -> list[str]:
    """The names of the GPUs a process may use: those of `listing` (`nvidia-smi -L`) that
    CUDA_VISIBLE_DEVICES (`visible`: indices or UUIDs; unset: all) lets it see."""
    gpus = re.findall(r"^GPU (\d+): (.+?) \(UUID: ([^)]+)\)", listing, re.M)
    if visible is None:
        return [name for _, name, _ in gpus]
    names = {key: name for index, name, uuid in gpus for key in (index, uuid)}
    return [names[key] for key in (v.strip() for v in visible.split(",")) if key in names]


def claim_gpu(lock_dir: str | None = None, poll_s: float = 5.0) -> int | None:
    """Pin this job to one free GPU by holding a per-GPU lock file for the process lifetime.

    Snakemake's `--resources gpu=N` only caps how many GPU jobs run at once; it does not say
    which device each one should use. Where a scheduler already chose (Slurm sets
    CUDA_VISIBLE_DEVICES), that choice stands.
    """
    if os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
        return None
    count = visible_gpu_count()
    if count <= 1:
        return 0 if count == 1 else None
    folder = Path(lock_dir or os.environ.get("MEDTRANSFER_GPU_LOCKS", tempfile.gettempdir()))
    while True:
        for gpu in range(count):
            fd = os.open(folder / f"medtransfer-gpu{gpu}.lock", os.O_CREAT | os.O_RDWR, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            _held_locks.append(fd)
            os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
            log.info("using GPU %d of %d (lock in %s)", gpu, count, folder)
            return gpu
        time.sleep(poll_s)


BACKENDS = ("tensorflow", "jax", "torch")
DEFAULT_BACKEND = "tensorflow"
# the package Keras needs for each backend, and the extra of this project that installs it
BACKEND_PACKAGES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


class BackendError(RuntimeError):
    """A Keras backend that cannot be used in this process; the message names the key."""


def select_backend(backend: str) -> None:
    """Make `backend` the Keras backend of this process: before Keras is first imported."""
    if backend not in BACKENDS:
        raise BackendError(f"keras_backend: {backend!r} is not one of {', '.join(BACKENDS)}")
    if importlib.util.find_spec(BACKEND_PACKAGES[backend]) is None:
        raise BackendError(
            f"keras_backend: {backend} is not installed here; pip install -e '.[{backend}]'"
        )
    if "keras" in sys.modules:
        current = sys.modules["keras"].backend.backend()
        if current != backend:
            raise BackendError(
                f"keras_backend: Keras already runs on {current} in this process; "
                f"{backend} must be chosen before Keras is imported"
            )
    os.environ["KERAS_BACKEND"] = backend


def _tensorflow_settings(threads: int) -> None:
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(max(1, threads))
    tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, threads)))
    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)
    tf.config.experimental.enable_op_determinism()


def _jax_settings(threads: int) -> None:
    # XLA reads its flags when JAX starts: one Eigen thread pool of `threads`, deterministic
    # GPU kernels, and memory taken as needed (JAX would otherwise reserve 75 % of a GPU)
    flags = [
        f"--xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'}",
        f"intra_op_parallelism_threads={max(1, threads)}",
        "--xla_gpu_deterministic_ops=true",
    ]
    os.environ["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""), *flags]).strip()
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")


def _torch_settings(threads: int) -> None:
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
    import torch

    torch.set_num_threads(max(1, threads))
    try:
        torch.set_num_interop_threads(max(1, min(2, threads)))
    except RuntimeError:  # already set: only the first call of a process may set it
        pass
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False


BACKEND_SETTINGS = {
    "tensorflow": _tensorflow_settings,
    "jax": _jax_settings,
    "torch": _torch_settings,
}


def _keep_tensorflow_out() -> None:
    """Keras seeds TensorFlow (for tf.data) whenever it is installed, importing it to do so:
    2-3 s per job on another backend, for a pipeline that never uses tf.data."""
    if "tensorflow" in sys.modules:
        return
    try:
        from keras.src.utils import module_utils
    except ImportError:  # a Keras without this module: seeding then imports TensorFlow
        return
    if hasattr(module_utils.tensorflow, "_available"):
        module_utils.tensorflow._available = False


# Keras imports these on `import keras` for its scikit-learn wrappers and its image-gallery
# plots, and works without them (it catches their ImportError); no job uses either part.
KERAS_OPTIONAL = ("sklearn", "matplotlib")


@contextlib.contextmanager
def _without_keras_optional_packages():
    """Keras started (by `import keras`, or by TensorFlow's import, which loads Keras too)
    without the optional packages it imports for parts no job uses: 2-2.5 s of a Keras
    job's 7-8-s start-up here (scikit-learn with SciPy's statistics for the wrappers,
    matplotlib.pyplot for the plots). They stay importable afterwards: a job that needs
    scikit-learn or matplotlib imports them itself, as it did before."""
    blocked = [name for name in KERAS_OPTIONAL if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # an import of it raises ImportError, as if not installed
    try:
        yield
    finally:
        for name in blocked:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


def import_keras(backend: str) -> Any:
    """Keras on `backend`, started without the optional packages it would import for parts
    no job uses; the backend's settings (threads, determinism) are `configure`'s."""
    select_backend(backend)
    with _without_keras_optional_packages():
        importlib.import_module(BACKEND_PACKAGES[backend])
        import keras
    return keras


def configure(
    threads: int, seed: int, mixed_precision: bool = False, backend: str = DEFAULT_BACKEND
) -> None:
    """Call before building any model: the backend, threads following the rule, results that
    repeat for a seed."""
    select_backend(backend)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    claim_gpu()
    with _without_keras_optional_packages():
        BACKEND_SETTINGS[backend](threads)
    keras = import_keras(backend)
    if backend != "tensorflow":
        _keep_tensorflow_out()
    keras.utils.set_random_seed(seed)
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed_precision else "float32")
    from .jobs import phase

    phase("imports")


# The CPU features whose kernels a job's arithmetic can take (oneDNN, Eigen, OpenBLAS pick
# by them): on another CPU model the same seed's last digits differ
VECTOR_EXTENSIONS = ("sse4", "avx", "fma", "amx")


def host() -> dict[str, Any]:
    """The CPU a job ran on, and the GPUs it could use. The same commit, data and seed on
    another CPU model give other last digits, and training amplifies them into another
    network (the showcase on two hosts: cells apart by up to 0.06 AUC, within the seed
    spread). A run record names its hosts, so that two records that differ can be told
    apart by them rather than by guessing (on a GPU, the GPU's kernels decide instead)."""
    import platform

    fields: dict[str, str] = {}
    with contextlib.suppress(OSError):  # no /proc/cpuinfo (macOS): the platform's name only
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
            if "model name" in fields and "flags" in fields:
                break
    flags = fields.get("flags", "").split()
    return {
        "machine": platform.machine(),
        "cpu": fields.get("model name") or platform.processor() or "unknown",
        "vector_extensions": sorted(f for f in flags if f.startswith(VECTOR_EXTENSIONS)),
        "gpus": visible_gpu_names(gpu_listing(), os.environ.get("CUDA_VISIBLE_DEVICES")),
    }


def versions() -> dict[str, str]:
    """Versions of the packages that determine a run's numbers."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    names = ("medtransfer", "tensorflow", "jax", "jaxlib", "torch", "keras", "scikit-learn",
             "numpy", "pillow")  # fmt: skip
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found
