"""extract: frozen-network features of every target image, shared by seeds and classifiers."""

import time

import _checkout  # noqa: F401  (this checkout's package)

from medtransfer import runtime
from medtransfer.jobs import job_logging, phase

with job_logging(snakemake, skip_teardown=True) as log:
    p = snakemake.params
    runtime.configure(
        snakemake.threads, p.seed, p.training["mixed_precision"], p.training["keras_backend"]
    )
    from medtransfer.data import load_prepared
    from medtransfer.io import save_npy, save_npz, write_json
    from medtransfer.models import (
        extract_model,
        feature_layer_name,
        predict_outputs,
        source_network,
    )

    images, meta = load_prepared(snakemake.input.images, snakemake.input.meta)
    model = source_network(
        snakemake.wildcards.source,
        snakemake.input.get("source") or None,
        images.shape[1],
        p.training["width"],
        p.seed,
        p.training["arch"],
    )
    phase("model")
    layer = feature_layer_name(model, p.training["feature_layer"], p.training["arch"])
    started = time.monotonic()
    network, names = extract_model(model, layer, p.training["arch"], snakemake.wildcards.source)
    features, *extra = predict_outputs(network, images, p.batch_size)
    seconds = time.monotonic() - started
    log.info(
        "%d images -> %s features of %d dims in %.1f s (%.0f img/s)",
        len(images),
        layer,
        features.shape[1],
        seconds,
        len(images) / max(seconds, 1e-9),
    )
    save_npy(snakemake.output.features, features)
    save_npz(snakemake.output.outputs, dict(zip(names[1:], extra, strict=True)))
    write_json(
        snakemake.output.info,
        {
            "architecture": p.training["arch"],
            "keras_backend": p.training["keras_backend"],
            "host": runtime.host(),
            "feature_layer": layer,
            "dims": int(features.shape[1]),
            "outputs": {name: list(x.shape[1:]) for name, x in zip(names[1:], extra, strict=True)},
            "n_images": len(images),
            "seconds": round(seconds, 2),
        },
    )
