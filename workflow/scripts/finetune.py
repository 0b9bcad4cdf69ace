"""finetune: retrain the source network on a target's seed split (all layers, or some blocks)."""

import _checkout  # noqa: F401  (this checkout's package)

from medtransfer import runtime
from medtransfer.jobs import job_logging, phase

with job_logging(snakemake, skip_teardown=True) as log:
    p, w = snakemake.params, snakemake.wildcards
    seed = int(w.seed)
    runtime.configure(
        snakemake.threads, seed, p.training["mixed_precision"], p.training["keras_backend"]
    )
    import keras
    import pandas as pd

    from medtransfer.data import load_prepared
    from medtransfer.io import read_json, save_npy, write_csv, write_json, write_text
    from medtransfer.models import (
        feature_layer_name,
        predict_outputs,
        set_trainable,
        source_network,
        stage_grams,
        with_new_head,
    )
    from medtransfer.training import history_csv, remove_checkpoint, train
    from medtransfer.transferability import cka_rows, probe_rows

    images, meta = load_prepared(snakemake.input.images, snakemake.input.meta)
    split = read_json(snakemake.input.split)
    width, arch = p.training["width"], p.training["arch"]
    source_path = snakemake.input.get("source") or None
    source = source_network(w.source, source_path, images.shape[1], width, seed, arch)
    model = with_new_head(
        source, len(meta["classes"]), random_dense=w.variant.endswith("-randhead"), arch=arch
    )
    set_trainable(model, w.variant, arch)
    phase("model")
    # the fine-tuned network shares the source's layers: their outputs are read before training
    probed = probe_rows(split["test"], p.probes["cka_images"])
    stages, source_grams = stage_grams(model, images, probed, arch, p.probes["cka_max_side"])
    model, state = train(model, images, meta["labels"], split, p.training, seed, p.checkpoint_dir)
    _, tuned_grams = stage_grams(model, images, probed, arch, p.probes["cka_max_side"])
    write_csv(pd.DataFrame(cka_rows(stages, source_grams, tuned_grams)), snakemake.output.cka)
    layer = feature_layer_name(model, p.training["feature_layer"], arch)
    network = keras.Model(model.input, [model.get_layer(layer).output, model.outputs[0]])
    features, softmax = predict_outputs(network, images)
    save_npy(snakemake.output.features, features)
    save_npy(snakemake.output.softmax, softmax)
    write_text(snakemake.output.history, history_csv(state))
    write_json(
        snakemake.output.training,
        {
            "architecture": arch,
            "keras_backend": p.training["keras_backend"],
            "host": runtime.host(),
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
        "fine-tuned %s %s on %s (%s, seed %d) for %d epochs",
        arch,
        w.source,
        w.target,
        w.variant,
        seed,
        state.next_epoch,
    )
    remove_checkpoint(p.checkpoint_dir)
