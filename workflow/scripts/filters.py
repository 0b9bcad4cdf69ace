"""filters: activation maximisation and first-layer kernels of one source network."""

from pathlib import Path

import _checkout  # noqa: F401  (this checkout's package)

from medtransfer import runtime
from medtransfer.jobs import job_logging, phase

with job_logging(snakemake, skip_teardown=True) as log:
    runtime.configure(
        snakemake.threads, snakemake.params.seed, backend=snakemake.params.keras_backend
    )
    from medtransfer.architectures import architecture
    from medtransfer.filters import visualise_source
    from medtransfer.io import write_json
    from medtransfer.models import source_network

    p, source = snakemake.params, snakemake.wildcards.source
    grids = Path(snakemake.output.grids)
    grids.mkdir(parents=True, exist_ok=True)
    path = snakemake.input.get("source") or None
    model = source_network(source, path, p.image_size, p.width, p.seed, p.arch)
    phase("model")
    result = visualise_source(
        model,
        source,
        p.layers,
        p.n_filters,
        p.steps,
        {layer: f"{grids}/{layer}.png" for layer in p.layers},
        snakemake.output.kernels,
        architecture(p.arch).first_conv,
    )
    log.info("%s %s: %.0f %% structural filters", p.arch, source, result["structural_percent"])
    write_json(snakemake.output.scores, result)
