"""Process-wide TensorFlow settings that must be made before TensorFlow starts: threads,
determinism, GPU choice and memory growth, mixed precision."""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)
_held_locks: list[int] = []


def visible_gpu_count() -> int:
    if not shutil.which("nvidia-smi"):
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(line.startswith("GPU ") for line in out.stdout.splitlines())


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


def configure(threads: int, seed: int, mixed_precision: bool = False) -> None:
    """Call before building any model: threads follow the rule, results repeat for a seed."""
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    claim_gpu()
    import keras
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(max(1, threads))
    tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, threads)))
    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)
    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(seed)
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed_precision else "float32")


def versions() -> dict[str, str]:
    """Versions of the packages that determine a run's numbers."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("medtransfer", "tensorflow", "keras", "scikit-learn", "numpy", "pillow"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found
