"""filters: activation maximisation and first-layer kernels of one source network."""

import _checkout  # noqa: F401  (this checkout's package)

from medtransfer import runtime
from medtransfer.jobs import job_logging

with job_logging(snakemake) as log:
    runtime.configure(snakemake.threads, 0)
    from medtransfer.filters import visualise_source
    from medtransfer.io import write_json
    from medtransfer.models import source_network

    p, source = snakemake.params, snakemake.wildcards.source
    model = source_network(source, snakemake.input.get("source") or None, p.image_size, p.width, 0)
    result = visualise_source(
        model,
        source,
        p.layers,
        p.n_filters,
        p.steps,
        dict(zip(p.layers, snakemake.output.grids, strict=True)),
        snakemake.output.kernels,
    )
    log.info("%s: %.0f %% structural filters", source, result["structural_percent"])
    write_json(snakemake.output.scores, result)
