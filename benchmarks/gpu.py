"""GPU throughput of the networks' two heavy loops, medtransfer's against bare Keras.

One backend per process (Keras fixes its backend at import; benchmarks/gpu.sh runs each one
installed). For VGG16 and EfficientNet-Lite0 at 224 px (random weights: speed only), with
mixed precision off and on, it prints images/s of
  extract   medtransfer's loop (uint8 memory-mapped array, 64-image chunks) vs model.predict
            on an in-memory float32 tensor;
  finetune  training.train (what a finetune job runs: batches from the uint8 array,
            validation and a checkpoint every epoch) vs bare model.fit without either;
and the GPU's utilisation sampled by nvidia-smi during medtransfer's fine-tuning. The first
epoch (graph tracing) is left out of the fine-tuning rates; extract is timed after a warm-up.

--dry runs the same code on the CPU at 32 px with a handful of images and VGG16 only, to
show that the script works before a GPU is lent (CI runs it); its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
NETWORKS = ("vgg16", "efficientnet_lite0")


class Utilisation:
    """nvidia-smi's GPU utilisation, sampled twice a second while the block runs."""

    def __init__(self):
        self.samples: list[float] = []
        self.running = False
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        while self.running:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
            ).stdout.split()
            self.samples += [float(v) for v in out[:1] if v.replace(".", "").isdigit()]
            time.sleep(0.5)

    def __enter__(self):
        if shutil.which("nvidia-smi"):
            self.running = True
            self.thread.start()
        return self

    def __exit__(self, *_):
        self.running = False

    def summary(self) -> str:
        if not self.samples:
            return "n/a (no nvidia-smi)"
        return f"mean {np.mean(self.samples):.0f} %, max {np.max(self.samples):.0f} %"


def images_of(n: int, size: int, folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """A uint8 memory-mapped array of n random images (what prepare writes) and labels."""
    rng = np.random.default_rng(0)
    path = folder / "images.npy"
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, size, size, 3))
    array[:] = rng.integers(0, 256, array.shape, dtype=np.uint8)
    array.flush()
    return np.load(path, mmap_mode="r"), np.arange(n) % 2


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("nan")


def bench_network(arch: str, size: int, n: int, epochs: int, mixed: bool, tmp: Path) -> dict:
    import keras

    from medtransfer.jobs import PHASES
    from medtransfer.models import (
        build_network,
        feature_layer_name,
        feature_model,
        predict_in_chunks,
    )
    from medtransfer.training import compile_for_training, train

    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    images, labels = images_of(n, size, tmp)
    width = 0.125 if size < 64 else 1.0
    keras.utils.set_random_seed(0)
    model = build_network(arch, size, 2, width)
    features = feature_model(model, feature_layer_name(model, "fc2", arch))
    predict_in_chunks(features, images[:64])  # warm-up: the predict function is traced once
    started = time.perf_counter()
    predict_in_chunks(features, images, 64)
    ours_extract = rate(n, time.perf_counter() - started)
    tensor = np.asarray(images, dtype=np.float32)
    features.predict(tensor[:64], batch_size=64, verbose=0)
    started = time.perf_counter()
    features.predict(tensor, batch_size=64, verbose=0)
    bare_extract = rate(n, time.perf_counter() - started)

    settings = {"learning_rate": 1e-3, "momentum": 0.9, "nesterov": True, "batch_size": 32,
                "epochs": epochs, "patience": epochs}  # fmt: skip
    n_val = n // 8
    split = {"train": list(range(n_val, n)), "val": list(range(n_val)),
             "class_weights": [1.0, 1.0]}  # fmt: skip
    keras.utils.set_random_seed(0)
    epoch_seconds = PHASES.notes.setdefault("epoch_seconds", [])
    before = len(epoch_seconds)
    with Utilisation() as gpu:
        train(build_network(arch, size, 2, width), images, labels, split, settings, 0,
              tmp / f"checkpoint-{arch}-{mixed}")  # fmt: skip
    later = epoch_seconds[before + 1 :]  # each epoch with its validation and checkpoint
    ours_train = rate(len(split["train"]) * len(later), sum(later))
    keras.utils.set_random_seed(0)
    bare = build_network(arch, size, 2, width)
    compile_for_training(bare, settings)
    x, y = tensor[split["train"]], labels[split["train"]]
    bare.fit(x, y, batch_size=32, epochs=1, verbose=0)  # tracing, as our first epoch
    started = time.perf_counter()
    bare.fit(x, y, batch_size=32, epochs=max(1, epochs - 1), verbose=0)
    bare_train = rate(len(x) * max(1, epochs - 1), time.perf_counter() - started)
    return {
        "network": f"{arch}@{size}px" + (" mixed" if mixed else ""),
        "extract ours": ours_extract,
        "extract bare": bare_extract,
        "finetune ours": ours_train,
        "finetune bare": bare_train,
        "gpu during finetune": gpu.summary(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", default="tensorflow")
    parser.add_argument("--dry", action="store_true", help="CPU smoke run: 32 px, few images")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    from medtransfer import runtime

    runtime.configure(os.cpu_count() or 2, 0, backend=args.backend)
    size, n, epochs = (32, 64, 2) if args.dry else (224, 1024, 3)
    networks = NETWORKS[:1] if args.dry else NETWORKS  # dry: the code paths, not the nets
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for arch in networks:
            for mixed in (False, True):
                rows.append(bench_network(arch, size, n, epochs, mixed, Path(folder)))
    print(
        f"backend {args.backend}"
        + (" (dry run on the CPU: the numbers mean nothing)" if args.dry else "")
    )
    head = ["network", "extract ours", "extract bare", "finetune ours", "finetune bare"]
    print(f"{head[0]:34}" + "".join(f"{h:>15}" for h in head[1:]) + "  gpu during finetune")
    for row in rows:
        cells = "".join(f"{row[h]:15.1f}" for h in head[1:])
        print(f"{row['network']:34}{cells}  {row['gpu during finetune']}")
    print("images/s; ours: medtransfer's loop as a job runs it; bare: Keras on in-memory arrays")
    return 0


if __name__ == "__main__":
    sys.exit(main())
