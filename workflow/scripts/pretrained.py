"""pretrained: a network pretrained elsewhere, checked and saved as a source network."""

import _checkout  # noqa: F401  (this checkout's package)

from medtransfer import runtime
from medtransfer.jobs import job_logging

with job_logging(snakemake) as log:
    p, w = snakemake.params, snakemake.wildcards
    runtime.configure(snakemake.threads, 0, backend=p.keras_backend)
    from medtransfer.models import pretrained_network, save_model
    from medtransfer.pretrained import check_sha256

    weights = snakemake.input[0]
    check_sha256(weights, p.entry.get("sha256"))
    model = pretrained_network(
        p.entry["architecture"], weights, p.image_size, p.entry.get("preprocessing")
    )
    log.info(
        "%s: %s weights from %s fit (%d parameters)",
        w.pretrained,
        w.arch,
        weights,
        model.count_params(),
    )
    save_model(model, snakemake.output[0])
