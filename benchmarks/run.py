"""Side-by-side benchmarks of medtransfer's inner loops against the original study's way of working.

Each comparison runs ours and the baseline in this one process on the same data and prints
a table (ours, baseline, ratio, goal). Real images come from the shared sample data; the
classifier comparison uses generated 4096-d features.

    python benchmarks/run.py                 # full sizes (about 3 minutes on 2 cores)
    python benchmarks/run.py --small         # a quick smoke run (CI)
    python benchmarks/run.py --grid .        # also a finished grid's job time and fixed cost
    python benchmarks/run.py --backends tensorflow,jax   # the small grid on each backend
    python benchmarks/run.py --backends tensorflow,torch --config config.yaml   # the first run
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
runpy.run_path(str(REPO / "workflow" / "scripts" / "_checkout.py"))  # this checkout's package
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def best_of(repeats: int, work: Callable[[], object]) -> tuple[float, object]:
    """Fastest wall time of `repeats` runs (the least disturbed one) and the last result."""
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - started)
    return min(times), result


def bench_scoring(n_train: int, n_test: int, dims: int, classes: int) -> dict:
    """Our score step (the same one-vs-rest linear SVMs solved by libsvm on one shared Gram
    matrix, AUC from the margins) vs OneVsRest(SVC(linear, probability)), both converged."""
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.svm import SVC

    from medtransfer.classifiers import fit_and_score
    from medtransfer.metrics import all_metrics

    rng = np.random.default_rng(0)
    # strongly overlapping classes (AUC near 0.7): where two SVM solvers disagree most
    centres = rng.normal(0, 0.03, (classes, dims))
    y = rng.integers(0, classes, n_train + n_test)
    x = (centres[y] + rng.normal(0, 1, (len(y), dims))).astype(np.float32)
    x = np.maximum(x, 0)  # fc2 features come out of a ReLU
    xtr, ytr, xte, yte = x[:n_train], y[:n_train], x[n_train:], y[n_train:]
    names = [str(k) for k in range(classes)]

    def ours():
        return all_metrics(yte, fit_and_score("svm", xtr, ytr, xte, classes, 0), names)

    def original_way():
        model = OneVsRestClassifier(SVC(kernel="linear", probability=True, random_state=0))
        model.fit(xtr, ytr)
        return all_metrics(yte, model.predict_proba(xte), names)

    t_ours, m_ours = best_of(1, ours)
    t_base, m_base = best_of(1, original_way)
    return {
        "comparison": f"score: {n_train}x{dims} features, {classes} classes (s)",
        "ours": t_ours,
        "baseline": t_base,
        "ratio": t_base / t_ours,
        "goal": ">= 50x",
        "met": t_base / t_ours >= 50 and abs(m_ours["auc_macro"] - m_base["auc_macro"]) <= 0.005,
        "note": f"AUC {m_ours['auc_macro']:.4f} vs {m_base['auc_macro']:.4f}",
    }


def bench_transferability(n: int, dims: int, classes: int) -> dict:
    """Every estimator of one (source, target) seed, sharing the centred eigendecomposition,
    vs each estimator alone (each decomposing for itself). The features have a decaying
    spectrum, as a network's do (isotropic noise would need most axes for N-LEEP's 80%)."""
    from medtransfer import transferability as tr

    rng = np.random.default_rng(0)
    labels = rng.integers(0, classes, n)
    latent = rng.normal(0, 1, (n, 128))
    latent[:, :classes] += np.eye(classes)[labels]
    mixing = rng.normal(0, 1, (128, dims)) * np.linspace(3, 0.1, 128)[:, None] / np.sqrt(128)
    features = np.maximum(latent @ mixing + rng.normal(0, 0.3, (n, dims)), 0)  # after a ReLU
    softmax = rng.dirichlet(np.ones(10), n)
    seconds: dict[str, float] = {}

    def ours():
        return tr.estimate_all(features, labels, softmax)

    # the imports (scikit-learn's mixture, SciPy's LAPACK) on a few rows first: they are
    # paid once per job, not per estimate, and would go to whichever side ran first
    tr.estimate_all(features[:50, :20], labels[:50], softmax[:50])

    def each_alone():
        for name in tr.ESTIMATORS:
            started = time.perf_counter()
            tr.estimate_all(features, labels, softmax, estimators=(name,))
            seconds[name] = time.perf_counter() - started

    t_ours, _ = best_of(2, ours)
    t_base, _ = best_of(1, each_alone)
    return {
        "comparison": f"transferability: 6 estimators, {n}x{dims} features (s)",
        "ours": t_ours,
        "baseline": t_base,
        "ratio": t_base / t_ours,
        "goal": "< 10 s",
        "met": t_ours < 10,
        "note": "alone: " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()),
    }


def prepare_one_task(
    tmp: str, name: str, task: dict, spec: dict, data: Path, size: int, threads: int
) -> tuple:
    """The workflow's prepare + select of one task into `tmp`; its (memory-mapped) images."""
    from medtransfer.data import load_prepared, prepare_dataset, task_meta
    from medtransfer.io import write_json

    images, index, meta = (Path(tmp) / f for f in ("images.npy", "index.json", "meta.json"))
    built = prepare_dataset(
        task["dataset"], spec, {name: task}, data, size, 0.01, images, index, threads
    )
    write_json(meta, task_meta(built, name))
    return load_prepared(images, meta)


def bench_prepare(data: Path, n_per_class: int, size: int) -> dict:
    """prepare (threads, JPEG draft decoding) vs a single-process Pillow loop doing the same
    work: each image decoded, resized and fingerprinted for the leakage audit (since
    2026-11-22 prepare fingerprints while it decodes; a loop that only resized would compare
    unequal work)."""
    from PIL import Image

    from medtransfer.adapters import open_dataset
    from medtransfer.data import select_task_items
    from medtransfer.fingerprints import fingerprint

    spec = {"adapter": "folder", "path": "cats_vs_dogs_sample"}
    task = {"dataset": "cats_vs_dogs", "max_per_class": n_per_class}
    dataset = open_dataset(spec, data)
    chosen = select_task_items(dataset, task, "catdog")
    files = [dataset.items[i].ref for i in chosen.indices]

    def original_way():
        out = np.empty((len(files), size, size, 3), np.uint8)
        for k, path in enumerate(files):
            with Image.open(path) as image:
                rgb = image.convert("RGB")
                out[k] = np.asarray(rgb.resize((size, size)))
                fingerprint(rgb)
        return out

    with tempfile.TemporaryDirectory() as tmp:

        def ours():
            return prepare_one_task(tmp, "catdog", task, spec, data, size, os.cpu_count() or 2)

        t_ours, _ = best_of(2, ours)
    t_base, _ = best_of(2, original_way)
    n = len(files)
    return {
        "comparison": f"prepare: {n} Cats vs Dogs JPEGs -> {size} px (img/s)",
        "ours": n / t_ours,
        "baseline": n / t_base,
        "ratio": t_base / t_ours,
        "goal": ">= 1.8x",
        "met": t_base / t_ours >= 1.8,
        "note": f"{os.cpu_count()} cores",
    }


def bench_extract(data: Path, n_images: int, size: int, width: float) -> dict:
    """The extract job's inner loop (memory-mapped uint8 -> features) vs bare model.predict
    on an in-memory float tensor of the same images."""
    from medtransfer import runtime

    runtime.configure(os.cpu_count() or 2, 0)
    from medtransfer.models import build_vgg16, feature_model, predict_in_chunks

    spec = {"adapter": "folder", "path": "natural_images_30px"}
    task = {"dataset": "natural", "max_per_class": max(1, n_images // 8)}
    with tempfile.TemporaryDirectory() as tmp:
        images, _ = prepare_one_task(tmp, "natural", task, spec, data, size, threads=2)
        model = feature_model(build_vgg16(size, 8, width), "fc2")
        in_memory = np.asarray(images, dtype=np.float32)
        predict_in_chunks(model, images[:64])  # warm-up: build the predict function once
        model.predict(in_memory[:64], batch_size=64, verbose=0)
        t_ours, _ = best_of(3, lambda: predict_in_chunks(model, images, 64))
        t_base, _ = best_of(3, lambda: model.predict(in_memory, batch_size=64, verbose=0))
    n = len(in_memory)
    return {
        "comparison": f"extract: {n} images, VGG16 width {width} at {size} px (img/s)",
        "ours": n / t_ours,
        "baseline": n / t_base,
        "ratio": t_base / t_ours,
        "goal": ">= 0.9x",
        "met": t_base / t_ours >= 0.9,
        "note": "memmap vs in-memory",
    }


def bench_training(data: Path, n_images: int, size: int, width: float, epochs: int) -> dict:
    """The fine-tuning loop of `finetune` (`training.train`: batches from the memory-mapped
    uint8 array, the compiled train and test steps batch by batch, validation and a
    checkpoint every epoch) vs bare `model.fit` on in-memory float32 arrays without
    validation or checkpoints; the same network, images, epochs and batch size. The note
    gives Keras' `fit` over a Python dataset, once per epoch (the loop before 2026-11-30)."""
    import keras

    from medtransfer import runtime

    runtime.configure(os.cpu_count() or 2, 0)
    from medtransfer.models import build_vgg16
    from medtransfer.training import BatchSequence, compile_for_training, train

    spec = {"adapter": "folder", "path": "blood_cells_wbc"}
    task = {"dataset": "blood", "max_per_class": max(1, n_images // 4)}
    settings = {"learning_rate": 1e-3, "momentum": 0.9, "nesterov": True, "batch_size": 32,
                "epochs": epochs, "patience": epochs}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        images, meta = prepare_one_task(tmp, "blood", task, spec, data, size, threads=2)
        labels = np.asarray(meta["labels"])
        n_val = len(labels) // 8
        split = {"train": list(range(n_val, len(labels))), "val": list(range(n_val)),
                 "class_weights": [1.0] * len(meta["classes"])}  # fmt: skip

        def network():
            keras.utils.set_random_seed(0)
            return build_vgg16(size, len(meta["classes"]), width)

        def ours():
            train(network(), images, labels, split, settings, 0, Path(tmp) / "checkpoint")

        x = np.asarray(images[split["train"]], dtype=np.float32)
        y = labels[split["train"]]

        def bare():
            model = network()
            compile_for_training(model, settings)
            model.fit(x, y, batch_size=32, epochs=epochs, verbose=0)

        class Batches(keras.utils.PyDataset):
            def __init__(self, epoch):
                super().__init__()
                self.batches = BatchSequence(images, labels, split["train"], 32, None, 0, epoch)

            def __len__(self):
                return len(self.batches)

            def __getitem__(self, index):
                return self.batches[index]

        def fit_per_epoch():
            model = network()
            compile_for_training(model, settings)
            for epoch in range(epochs):
                model.fit(Batches(epoch), epochs=1, verbose=0, shuffle=False)

        t_ours, _ = best_of(1, ours)
        t_base, _ = best_of(1, bare)
        t_old, _ = best_of(1, fit_per_epoch)
    n = len(split["train"])
    return {
        "comparison": f"train: {epochs} epochs of {n} images, VGG16 width {width} at {size} px (s)",
        "ours": t_ours,
        "baseline": t_base,
        "ratio": t_base / t_ours,
        "goal": ">= 0.77x",
        "met": t_base / t_ours >= 1 / 1.3,
        "note": f"fit(PyDataset) per epoch: {t_old:.1f} s",
    }


AUDIT_SETS = {
    "natural": {"adapter": "folder", "path": "natural_images_30px"},
    "pneumonia": {"adapter": "npz", "path": "pneumoniamnist/pneumoniamnist_reassembled.npz"},
    "blood": {"adapter": "folder", "path": "blood_cells_wbc"},
    "isic": {"adapter": "folder", "path": "isic_archive_sample"},
    "catdog": {"adapter": "folder", "path": "cats_vs_dogs_sample"},
}


def bench_audit(data: Path, n_images: int, baseline_images: int) -> dict:
    """The audit's duplicate search over n images vs comparing all pairs' hashes.

    Real fingerprints of the sample data (~18,000 images, X-rays and natural images: the
    hashes cluster as real ones do) are tiled up to n with copies whose hash gets 8 random bit
    flips (mostly distinct images to the audit, but in the same crowded buckets). The all-pairs
    baseline is timed on the first `baseline_images` and scaled by the number of pairs."""
    from medtransfer.duplicates import find_duplicates
    from medtransfer.fingerprints import Fingerprints

    with tempfile.TemporaryDirectory() as tmp:
        parts = []
        for name, spec in AUDIT_SETS.items():
            task = {"dataset": name}
            prepare_one_task(tmp, name, task, spec, data, 32, os.cpu_count() or 2)
            parts.append(Fingerprints.load(Path(tmp) / "fingerprints.npz"))
    real = Fingerprints(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                          ("exact", "phash", "thumbs")))  # fmt: skip
    rng = np.random.default_rng(0)
    rows = np.arange(n_images) % len(real)
    prints = real.take(rows)
    copies = np.flatnonzero(np.arange(n_images) >= len(real))
    for _ in range(8):  # 8 random bit flips per copy (a flip may undo another)
        flips = np.uint64(1) << rng.integers(0, 63, size=(len(copies), 1)).astype(np.uint64)
        prints.phash[copies] ^= flips
    prints.exact[copies] = rng.integers(0, 2**63, size=len(copies), dtype=np.uint64)

    t_ours, matches = best_of(1, lambda: find_duplicates(prints))

    def all_pairs():
        hashes = prints.phash[:baseline_images, 0]
        close = 0
        for start in range(0, len(hashes), 1000):
            block = hashes[start : start + 1000]
            close += int(np.sum(np.bitwise_count(block[:, None] ^ hashes[None, :]) <= 6))
        return close

    t_part, _ = best_of(1, all_pairs)
    t_base = t_part * (n_images / baseline_images) ** 2
    return {
        "comparison": f"audit: {n_images} images, exact + near duplicates (s)",
        "ours": t_ours,
        "baseline": t_base,
        "ratio": t_base / t_ours,
        "goal": "< 60 s",
        "met": t_ours < 60,
        "note": f"{len(matches)} pairs; all pairs timed on {baseline_images}, scaled",
    }


def grid_overhead(workdir: Path, cores: int) -> dict:
    """Sum of job seconds (Snakemake's benchmark files) against the grid's wall time."""
    from grid import job_seconds

    jobs = job_seconds(workdir)
    wall = jobs.end.max() - jobs.start.min()
    total = jobs.s.sum()
    per_rule = jobs.groupby("rule").s.agg(["count", "sum"]).reset_index()
    per_rule.to_csv(workdir / "results" / "benchmarks.csv", index=False, float_format="%.2f")
    idle = wall * cores - total
    return {
        "comparison": f"grid: {len(jobs)} jobs on {cores} cores (core-s)",
        "ours": total,
        "baseline": wall * cores,
        "ratio": idle / total,
        "goal": "<= 0.10",
        "met": idle / total <= 0.10,
        "note": f"wall {wall:.0f} s; per-rule totals in {workdir}/results/benchmarks.csv",
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", action="store_true", help="quick sizes (CI smoke run)")
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("MEDTRANSFER_SHARED_DATA", REPO.parent / "shared" / "data")),
    )
    parser.add_argument(
        "--grid", type=Path, help="a finished grid's working directory: job time, fixed cost"
    )
    parser.add_argument(
        "--backends",
        help="comma-separated Keras backends: run the small grid on each, side by side "
        "(only this comparison)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="with --backends: this grid's config instead of the small grid's",
    )
    parser.add_argument("--keep", type=Path, help="with --backends: keep the grids here")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    unused = [name for name in ("config", "keep") if getattr(args, name) and not args.backends]
    if unused:  # the other comparisons would run and silently ignore them
        parser.error(f"--{unused[0]} goes with --backends (the grids it compares)")
    sys.path.insert(0, str(REPO / "benchmarks"))
    if args.backends:
        from grid import SMALL_GRID, compare_backends

        grid = args.config.resolve() if args.config else SMALL_GRID
        print(compare_backends(args.backends.split(","), args.data, args.cores, args.keep, grid))
        return 0
    if args.small:
        rows = [
            bench_scoring(150, 60, 512, 3),
            bench_prepare(args.data, 20, 32),
            bench_extract(args.data, 64, 32, 0.25),
            bench_audit(args.data, 20_000, 2_000),
            bench_transferability(500, 256, 3),
            bench_training(args.data, 96, 32, 0.25, 2),
        ]
    else:
        rows = [
            bench_scoring(1500, 500, 4096, 3),
            bench_prepare(args.data, 401, 32),
            bench_extract(args.data, 1024, 64, 0.5),
            bench_audit(args.data, 100_000, 10_000),
            bench_transferability(5000, 4096, 3),
            bench_training(args.data, 1024, 32, 0.25, 8),
        ]
    if args.grid:
        rows.append(grid_overhead(args.grid, args.cores))
    print(f"{'comparison':62} {'ours':>10} {'baseline':>10} {'ratio':>8}  goal      met  note")
    for row in rows:
        print(
            f"{row['comparison']:62} {row['ours']:10.2f} {row['baseline']:10.2f} "
            f"{row['ratio']:8.2f}  {row['goal']:9} {'yes' if row['met'] else 'NO ':3}  "
            f"{row['note']}"
        )
    if args.grid:
        from grid import fixed_cost

        print("\nfixed cost per Keras rule (median s per job; fixed share of the rule's time):")
        print(fixed_cost(args.grid).round(2).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
