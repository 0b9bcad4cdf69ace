"""What each Snakemake rule does, called by the thin scripts in workflow/scripts.

Each function takes the `snakemake` object, sends the job's logging and stderr (TensorFlow's
C++ messages included) to the rule's log file, and hands over to a tested package function.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def job_logging(smk: Any) -> Iterator[logging.Logger]:
    """Route stderr and the logging module to the job's log file for the job's lifetime."""
    log_path = smk.log[0] if smk.log else None
    if log_path:
        os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
        handle = open(log_path, "a", buffering=1)  # noqa: SIM115  closed below
        os.dup2(handle.fileno(), 2)
        sys.stderr = handle
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    logger = logging.getLogger(f"medtransfer.{smk.rule}")
    logger.info("rule %s, wildcards %s, threads %s", smk.rule, dict(smk.wildcards), smk.threads)
    try:
        yield logger
    except Exception:
        logger.exception("rule %s failed", smk.rule)
        raise


def prepare(smk: Any) -> None:
    from .data import prepare_dataset

    with job_logging(smk):
        p = smk.params
        prepare_dataset(
            smk.wildcards.dataset,
            p.dataset,
            p.tasks,
            p.data_root,
            int(smk.wildcards.size),
            p.max_bad_fraction,
            smk.output.images,
            smk.output.index,
            smk.threads,
            smk.output.fingerprints,
        )


def select(smk: Any) -> None:
    from .data import task_meta
    from .io import read_json, write_json

    with job_logging(smk) as log:
        meta = task_meta(read_json(smk.input.index), smk.wildcards.task, smk.input.index)
        log.info("task %s: %d images, classes %s", meta["task"], meta["n_images"], meta["counts"])
        write_json(smk.output.meta, meta)


def split(smk: Any) -> None:
    import pandas as pd

    from .io import read_json, write_json
    from .splits import Duplicates, make_split

    with job_logging(smk) as log:
        meta = read_json(smk.input.meta)
        p = smk.params
        result = make_split(
            meta,
            int(smk.wildcards.seed),
            p.val,
            p.test,
            p.mode,
            Duplicates.from_table(pd.read_csv(smk.input.pairs)),
            p.merge_near,
            p.on_leak,
        )
        log.info(
            "split sizes %s in %s groups, class weights %s, leakage %s",
            result["counts"],
            result["groups"],
            result["class_weights"],
            result["leakage"],
        )
        write_json(smk.output[0], result)


def audit(smk: Any) -> None:
    from .audit import audit_task
    from .io import read_json

    with job_logging(smk) as log:
        p = smk.params
        summary = audit_task(
            read_json(smk.input.meta),
            smk.input.fingerprints,
            smk.output.pairs,
            smk.output.summary,
            p.near_bits,
            p.near_correlation,
        )
        log.info("audit of task %s: %s", smk.wildcards.task, summary)


def audit_overlap(smk: Any) -> None:
    from .audit import audit_overlap as find_overlap
    from .audit import overlap_message
    from .data import DataError
    from .io import read_json

    with job_logging(smk) as log:
        p = smk.params
        summary = find_overlap(
            read_json(smk.input.source_meta),
            smk.input.source_fingerprints,
            read_json(smk.input.target_meta),
            smk.input.target_fingerprints,
            smk.output.pairs,
            smk.output.summary,
            p.near_bits,
            p.near_correlation,
        )
        if summary["exact_pairs"] or summary["near_pairs"]:
            if p.on_overlap == "error":
                raise DataError(
                    overlap_message(summary) + "; set audit.on_overlap: warn to go on anyway"
                )
            log.warning(overlap_message(summary))
        else:
            log.info("no image of %s reappears in %s", summary["source"], summary["target"])


def audit_report(smk: Any) -> None:
    from .audit import audit_report as tables
    from .io import read_json, write_text
    from .reporting import to_markdown, write_csv

    with job_logging(smk):
        tasks, overlaps, splits = tables(
            [read_json(f) for f in smk.input.tasks],
            [read_json(f) for f in smk.input.overlaps],
            [read_json(f) for f in smk.input.splits],
        )
        write_csv(tasks, smk.output.tasks)
        write_csv(overlaps, smk.output.overlaps)
        write_csv(splits, smk.output.splits)
        sections = [
            ("Duplicates within each task", tasks),
            ("Source images that reappear in a target task", overlaps),
            ("Leakage across the splits of each seed", splits),
        ]
        write_text(
            smk.output.md,
            "\n".join(
                f"## {title}\n\n{to_markdown(t) if len(t) else '(none)'}\n" for title, t in sections
            ),
        )


def fetch_imagenet(smk: Any) -> None:
    import shutil

    from .imagenet import fetch_weights
    from .io import atomic_path

    with job_logging(smk) as log:
        found = fetch_weights(int(smk.wildcards.size), smk.params.weights_dir)
        log.info("using ImageNet weights %s", found)
        with atomic_path(smk.output[0]) as tmp:
            shutil.copyfile(found, tmp)


def source_network(source: str, path: str | None, image_size: int, width: float, seed: int):
    """The network a source provides: random ('none'), ImageNet weights, or a trained model."""
    import keras

    from .config import IMAGENET, NO_SOURCE
    from .models import build_vgg16, imagenet_vgg16, load_source

    if source == NO_SOURCE:
        keras.utils.set_random_seed(seed)
        return build_vgg16(image_size, 2, width)
    if source == IMAGENET:
        return imagenet_vgg16(path, image_size)
    return load_source(path, image_size)


def _source_path(smk: Any) -> str | None:
    return smk.input.get("source") or None


def _save_model(model: Any, path: str) -> None:
    """Save without optimizer state: a fresh functional model over the same layers."""
    import keras

    from .io import atomic_path

    with atomic_path(path) as tmp:
        keras.Model(model.inputs, model.outputs, name=model.name).save(tmp)


def subsample(smk: Any) -> None:
    import numpy as np

    from .io import read_json, write_json
    from .splits import subsample_train

    with job_logging(smk) as log:
        meta = read_json(smk.input.meta)
        result = subsample_train(
            read_json(smk.input.split),
            np.asarray(meta["labels"]),
            float(smk.wildcards.fraction),
            len(meta["classes"]),
        )
        log.info("kept %s training images per class", result["counts"]["train"])
        write_json(smk.output[0], result)


def learning_curve(smk: Any) -> None:
    from .analysis import write_learning_curves

    with job_logging(smk):
        write_learning_curves(list(smk.input.runs), smk.output.csv, smk.output.png)


def pretrain(smk: Any) -> None:
    import numpy as np

    with job_logging(smk) as log:
        p = smk.params
        from . import runtime

        runtime.configure(smk.threads, p.seed, p.training["mixed_precision"])
        from .analysis import SOURCE_SAMPLE, stratified_sample
        from .data import load_prepared
        from .io import read_json, save_npy, write_json, write_text
        from .models import build_vgg16, sample_features
        from .training import history_csv, remove_checkpoint, train, validation_batches

        images, meta = load_prepared(smk.input.images, smk.input.meta)
        split = read_json(smk.input.split)
        model = build_vgg16(images.shape[1], len(meta["classes"]), p.training["width"])
        model, state = train(
            model, images, meta["labels"], split, p.training, p.seed, p.checkpoint_dir
        )
        val_data = validation_batches(images, meta["labels"], split, p.training["batch_size"])
        _, val_accuracy = model.evaluate(val_data, verbose=0)
        log.info(
            "source %s: val accuracy %.4f after %d epochs (best %d)",
            smk.wildcards.trained,
            val_accuracy,
            state.next_epoch,
            state.best_epoch,
        )
        _save_model(model, smk.output.model)
        sample = stratified_sample(np.asarray(meta["labels"]), SOURCE_SAMPLE, p.seed)
        features = sample_features(model, images, p.training["feature_layer"], sample)
        save_npy(smk.output.features, features)
        write_text(smk.output.history, history_csv(state))
        write_json(
            smk.output.info,
            {
                "source": smk.wildcards.trained,
                "classes": meta["classes"],
                "image_size": int(images.shape[1]),
                "width": p.training["width"],
                "n_train": len(split["train"]),
                "n_val": len(split["val"]),
                "val_accuracy": float(val_accuracy),
                "epochs_run": state.next_epoch,
                "best_epoch": state.best_epoch,
                "stopped_early": state.stopped_early,
                "train_seconds": round(state.train_seconds, 2),
                "feature_sample_labels": np.asarray(meta["labels"])[sample].tolist(),
                "versions": runtime.versions(),
            },
        )
        remove_checkpoint(p.checkpoint_dir)


def analyse(smk: Any) -> None:
    from .analysis import PAIR_KEYS, write_analysis

    with job_logging(smk):
        pairs = [dict(zip(PAIR_KEYS, quad, strict=True)) for quad in smk.params.pairs]
        write_analysis(
            smk.config, smk.input.table, pairs, smk.params.source_infos, dict(smk.output.items())
        )


def extract(smk: Any) -> None:
    import time

    with job_logging(smk) as log:
        p = smk.params
        from . import runtime

        runtime.configure(smk.threads, p.seed, p.training["mixed_precision"])
        from .data import load_prepared
        from .io import save_npy, write_json
        from .models import feature_layer_name, feature_model, predict_in_chunks

        images, meta = load_prepared(smk.input.images, smk.input.meta)
        model = source_network(
            smk.wildcards.source, _source_path(smk), images.shape[1], p.training["width"], p.seed
        )
        layer = feature_layer_name(model, p.training["feature_layer"])
        started = time.monotonic()
        features = predict_in_chunks(feature_model(model, layer), images, p.batch_size)
        seconds = time.monotonic() - started
        log.info(
            "%d images -> %s features of %d dims in %.1f s (%.0f img/s)",
            len(images),
            layer,
            features.shape[1],
            seconds,
            len(images) / max(seconds, 1e-9),
        )
        save_npy(smk.output.features, features)
        write_json(
            smk.output.info,
            {
                "feature_layer": layer,
                "dims": int(features.shape[1]),
                "n_images": len(images),
                "seconds": round(seconds, 2),
            },
        )


def finetune(smk: Any) -> None:
    with job_logging(smk) as log:
        p, w = smk.params, smk.wildcards
        seed = int(w.seed)
        from . import runtime

        runtime.configure(smk.threads, seed, p.training["mixed_precision"])
        from .config import IMAGENET
        from .data import load_prepared
        from .io import read_json, save_npy, write_json, write_text
        from .models import (
            feature_layer_name,
            feature_model,
            predict_in_chunks,
            set_trainable,
            with_new_head,
        )
        from .training import history_csv, remove_checkpoint, train

        images, meta = load_prepared(smk.input.images, smk.input.meta)
        split = read_json(smk.input.split)
        width = p.training["width"]
        source = source_network(w.source, _source_path(smk), images.shape[1], width, seed)
        head_width = 1.0 if w.source == IMAGENET else width
        model = with_new_head(
            source, len(meta["classes"]), head_width, random_dense=w.variant.endswith("-randhead")
        )
        set_trainable(model, w.variant)
        model, state = train(
            model, images, meta["labels"], split, p.training, seed, p.checkpoint_dir
        )
        layer = feature_layer_name(model, p.training["feature_layer"])
        save_npy(smk.output.features, predict_in_chunks(feature_model(model, layer), images))
        save_npy(smk.output.softmax, predict_in_chunks(model, images))
        write_text(smk.output.history, history_csv(state))
        write_json(
            smk.output.training,
            {
                "feature_layer": layer,
                "variant": w.variant,
                "epochs_run": state.next_epoch,
                "best_epoch": state.best_epoch,
                "stopped_early": state.stopped_early,
                "train_seconds": round(state.train_seconds, 2),
                "trainable_layers": [la.name for la in model.layers if la.trainable and la.weights],
                "mixed_precision": p.training["mixed_precision"],
                "xla": p.training["xla"],
            },
        )
        log.info(
            "fine-tuned %s on %s (%s, seed %d) for %d epochs",
            w.source,
            w.target,
            w.variant,
            seed,
            state.next_epoch,
        )
        remove_checkpoint(p.checkpoint_dir)


def score(smk: Any) -> None:
    import time

    import numpy as np

    with job_logging(smk) as log:
        from . import runtime
        from .audit import copies_in_test
        from .classifiers import fit_and_score
        from .config import config_hash, parse_method
        from .io import read_json, write_json
        from .metrics import all_metrics
        from .splits import train_test_leaks

        started = time.monotonic()
        w, p = smk.wildcards, smk.params
        seed, method = int(w.seed), parse_method(w.method)
        meta, split = read_json(smk.input.meta), read_json(smk.input.split)
        labels, classes = np.asarray(meta["labels"]), meta["classes"]
        train_rows, test_rows = split["train"], split["test"]
        if method.classifier == "head":
            scores = np.load(smk.input.network_scores, mmap_mode="r")[test_rows]
        else:
            x = _score_inputs(smk, method.kind)
            scores = fit_and_score(
                method.classifier,
                x[train_rows],
                labels[train_rows],
                x[test_rows],
                len(classes),
                seed,
                p.svm_c,
                smk.threads,
                p.class_weights,
            )
        metrics = all_metrics(
            labels[test_rows], np.asarray(scores, dtype=np.float64), classes, p.ordinal
        )
        overlap = read_json(smk.input.overlap) if "overlap" in smk.input.keys() else None
        training = read_json(smk.input.training) if "training" in smk.input.keys() else {}
        extracted = (
            read_json(smk.input.features_info) if "features_info" in smk.input.keys() else {}
        )
        log.info(
            "%s %s %s seed %d: AUC %s, accuracy %.3f",
            w.target,
            w.source,
            w.method,
            seed,
            metrics["auc_macro"],
            metrics["accuracy"],
        )
        write_json(
            smk.output[0],
            {
                "target": w.target,
                "source": w.source,
                "method": w.method,
                "seed": seed,
                "kind": method.kind,
                "classifier": method.classifier,
                "variant": method.variant,
                "classes": classes,
                **metrics,
                "sizes": {s: len(split[s]) for s in ("train", "val", "test")},
                "train_fraction": split.get("train_fraction", 1.0),
                "skipped_images": len(meta["skipped"]),
                "leakage": {
                    "train_test": train_test_leaks(split["leakage"]),
                    "source_target": copies_in_test(overlap, test_rows, w.source),
                    "groups": split["groups"],
                },
                "feature_layer": training.get("feature_layer") or extracted.get("feature_layer"),
                "epochs_run": training.get("epochs_run"),
                "best_epoch": training.get("best_epoch"),
                "wall_time_s": {
                    "score": round(time.monotonic() - started, 3),
                    "training": training.get("train_seconds"),
                },
                "mixed_precision": training.get("mixed_precision"),
                "xla": training.get("xla"),
                "versions": runtime.versions(),
                "config_hash": config_hash(smk.config),
                "inputs": {k: str(v) for k, v in smk.input.items()},
                "test_labels": labels[test_rows].tolist(),
                "test_scores": np.round(scores, 6).tolist(),
            },
        )


def _score_inputs(smk: Any, kind: str) -> Any:
    """Rows to classify: network features, or flattened pixels scaled to [0, 1]."""
    import numpy as np

    if kind == "pixels":
        from .data import load_prepared

        images, _ = load_prepared(smk.input.images, smk.input.meta)
        return _FlatPixels(images)
    return np.load(smk.input.features, mmap_mode="r")


class _FlatPixels:
    """Index rows of a memory-mapped image array as flat float vectors, only when asked."""

    def __init__(self, images: Any):
        self.images = images

    def __getitem__(self, rows: Any) -> Any:
        import numpy as np

        block = np.asarray(self.images[rows], dtype=np.float32) / 255.0
        return block.reshape(len(block), -1)


def _report_config(smk: Any) -> dict[str, Any]:
    """The config a report step works on; one target only for results/{target}/ tables."""
    config = dict(smk.config)
    if "target" in smk.wildcards.keys():
        config["targets"] = [smk.wildcards.target]
    return config


def table2(smk: Any) -> None:
    from .reporting import write_table2

    with job_logging(smk) as log:
        table = write_table2(
            _report_config(smk),
            list(smk.input.runs),
            smk.params.sources,
            dict(smk.output.items()),
        )
        log.info("Table II with %d rows from %d runs", len(table), len(smk.input.runs))


def figure(smk: Any) -> None:
    from .reporting import write_figure3

    with job_logging(smk):
        write_figure3(
            smk.config,
            smk.input.table,
            smk.params.sources,
            smk.output.png,
            smk.output.pdf,
            smk.output.data,
        )


def filters(smk: Any) -> None:
    with job_logging(smk) as log:
        from . import runtime

        runtime.configure(smk.threads, 0)
        from .filters import visualise_source
        from .io import write_json

        p = smk.params
        image_size = smk.config["image_size"]
        model = source_network(smk.wildcards.source, _source_path(smk), image_size, p.width, 0)
        grids = dict(zip(p.layers, smk.output.grids, strict=True))
        result = visualise_source(
            model, smk.wildcards.source, p.layers, p.n_filters, p.steps, grids, smk.output.kernels
        )
        log.info(
            "%s: %.0f %% structural filters", smk.wildcards.source, result["structural_percent"]
        )
        write_json(smk.output.scores, result)


def structural(smk: Any) -> None:
    import pandas as pd

    from .io import atomic_path, read_json
    from .reporting import structural_table

    with job_logging(smk):
        scores = [read_json(path) for path in smk.input.scores]
        table = structural_table(
            smk.config, scores, pd.read_csv(smk.input.table), read_json(smk.input.null)
        )
        with atomic_path(smk.output[0]) as tmp:
            table.to_csv(tmp, index=False, float_format="%.4f")


def target_report(smk: Any) -> None:
    from .target_report import write_target_report

    with job_logging(smk):
        write_target_report(
            list(smk.input.runs), list(smk.input.histories), dict(smk.output.items())
        )
