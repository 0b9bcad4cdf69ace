"""score: a classifier on features (or pixels) and every metric of one run: its run record."""

import time
import warnings

import _checkout  # noqa: F401  (this checkout's package)
import numpy as np
from sklearn.exceptions import ConvergenceWarning

from medtransfer import runtime
from medtransfer.audit import copies_in_test
from medtransfer.classifiers import PROBABILISTIC, FlatPixels, fit_and_score
from medtransfer.config import config_hash, parse_method
from medtransfer.data import load_prepared
from medtransfer.io import read_json
from medtransfer.jobs import job_logging
from medtransfer.metrics import all_metrics
from medtransfer.runs import RunRecord, nearly_tied, recorded_scores, write_run
from medtransfer.splits import train_test_leaks


def optional_json(name):
    return read_json(snakemake.input[name]) if name in snakemake.input.keys() else {}


with job_logging(snakemake, skip_teardown=True) as log:
    started = time.monotonic()
    w, p = snakemake.wildcards, snakemake.params
    seed, method = int(w.seed), parse_method(w.method)
    meta, split = read_json(snakemake.input.meta), read_json(snakemake.input.split)
    labels, classes = np.asarray(meta["labels"]), meta["classes"]
    train_rows, test_rows = split["train"], split["test"]
    converged = None  # no classifier is fitted for the network's own softmax
    if method.classifier == "head":
        scores = np.load(snakemake.input.network_scores, mmap_mode="r")[test_rows]
    else:
        if method.kind == "pixels":
            x = FlatPixels(load_prepared(snakemake.input.images, snakemake.input.meta)[0])
        else:
            x = np.load(snakemake.input.features, mmap_mode="r")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            scores = fit_and_score(
                method.classifier,
                x[train_rows],
                labels[train_rows],
                x[test_rows],
                len(classes),
                seed,
                p.svm_c,
                snakemake.threads,
                p.class_weights,
                p.svm_features,
            )
        converged = not any(issubclass(c.category, ConvergenceWarning) for c in caught)
        if not converged:
            log.warning("%s did not converge: its scores are those of the last iteration",
                        method.classifier)  # fmt: skip
    scores = np.asarray(scores, dtype=np.float64)
    tied = nearly_tied(scores)
    if tied:
        log.warning("%s's test scores of a class differ by under 1e-9 of their size: its AUC "
                    "ranks floating-point noise (classifiers.svm_features: standardised scales "
                    "the features first)", method.classifier)  # fmt: skip
    metrics = all_metrics(
        labels[test_rows], scores, classes, p.ordinal, method.classifier in PROBABILISTIC
    )
    training, extracted = optional_json("training"), optional_json("features_info")
    overlap = optional_json("overlap") or None
    log.info(
        "%s %s %s %s seed %d: AUC %s, accuracy %.3f",
        w.arch,
        w.target,
        w.source,
        w.method,
        seed,
        metrics["auc_macro"],
        metrics["accuracy"],
    )
    record = {
        "architecture": w.arch,
        "target": w.target,
        "source": w.source,
        "method": w.method,
        "seed": seed,
        "kind": method.kind,
        "classifier": method.classifier,
        "classifier_converged": converged,
        "variant": method.variant,
        "classes": classes,
        **metrics,
        "sizes": {s: len(split[s]) for s in ("train", "val", "test")},
        "train_fraction": split.get("train_fraction", 1.0),
        "image_size": meta["image_size"],
        "skipped_images": len(meta["skipped"]),
        "leakage": {
            "train_test": train_test_leaks(split["leakage"]),
            "source_target": copies_in_test(overlap, test_rows, w.source),
            "groups": split["groups"],
        },
        "feature_layer": training.get("feature_layer") or extracted.get("feature_layer"),
        # the backend of the network behind the scores (pixel baselines have none)
        "keras_backend": training.get("keras_backend") or extracted.get("keras_backend"),
        "epochs_run": training.get("epochs_run"),
        "best_epoch": training.get("best_epoch"),
        "wall_time_s": {
            "score": round(time.monotonic() - started, 3),
            "training": training.get("train_seconds"),
        },
        "mixed_precision": training.get("mixed_precision"),
        "xla": training.get("xla"),
        "versions": runtime.versions(),
        # the CPU and GPUs of this job and of the job that made its network's outputs
        "hosts": {
            "score": runtime.host(),
            "network": training.get("host") or extracted.get("host"),
        },
        # provenance only (not a setting of this job): the config in force when it was scored
        "config_hash": config_hash(snakemake.config),
        "inputs": {k: str(v) for k, v in snakemake.input.items()},
        "test_labels": labels[test_rows].tolist(),
        "test_scores": recorded_scores(scores),
        "scores_nearly_tied": tied,
    }
    write_run(snakemake.output[0], RunRecord.from_json(record))
