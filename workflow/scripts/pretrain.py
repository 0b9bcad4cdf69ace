"""pretrain: train a network from scratch on a source task (the paper's source networks)."""

import _checkout  # noqa: F401  (this checkout's package)
import numpy as np

from medtransfer import runtime
from medtransfer.jobs import job_logging, phase

with job_logging(snakemake, skip_teardown=True) as log:
    p = snakemake.params
    runtime.configure(
        snakemake.threads, p.seed, p.training["mixed_precision"], p.training["keras_backend"]
    )
    from medtransfer.analysis import SOURCE_SAMPLE, stratified_sample
    from medtransfer.data import load_prepared
    from medtransfer.io import read_json, save_npy, write_json, write_text
    from medtransfer.models import build_network, sample_features, save_model
    from medtransfer.training import (
        history_csv,
        remove_checkpoint,
        run_epoch,
        train,
        validation_batches,
    )

    images, meta = load_prepared(snakemake.input.images, snakemake.input.meta)
    labels = meta["labels"]
    split = read_json(snakemake.input.split)
    arch = p.training["arch"]
    model = build_network(arch, images.shape[1], len(meta["classes"]), p.training["width"])
    phase("model")
    model, state = train(model, images, labels, split, p.training, p.seed, p.checkpoint_dir)
    val_data = validation_batches(images, labels, split, p.training["batch_size"])
    _, val_accuracy = run_epoch(model, val_data, training=False)
    log.info(
        "%s source %s: val accuracy %.4f after %d epochs (best %d)",
        arch,
        snakemake.wildcards.trained,
        val_accuracy,
        state.next_epoch,
        state.best_epoch,
    )
    save_model(model, snakemake.output.model)
    sample = stratified_sample(np.asarray(labels), SOURCE_SAMPLE, p.seed)
    save_npy(
        snakemake.output.features,
        sample_features(model, images, p.training["feature_layer"], sample, arch),
    )
    write_text(snakemake.output.history, history_csv(state))
    write_json(
        snakemake.output.info,
        {
            "source": snakemake.wildcards.trained,
            "architecture": arch,
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
            "feature_sample_labels": np.asarray(labels)[sample].tolist(),
            "versions": runtime.versions(),
            "host": runtime.host(),
        },
    )
    remove_checkpoint(p.checkpoint_dir)
