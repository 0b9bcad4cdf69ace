"""compare_resolutions: mean AUC per source and method at each image size of an
architecture the grid runs at several sizes."""

import _checkout  # noqa: F401  (this checkout's package)

from medtransfer.jobs import job_logging
from medtransfer.resolution import write_resolution

with job_logging(snakemake) as log:
    p = snakemake.params
    data = write_resolution(
        list(snakemake.input.runs), p.networks, p.sources, p.report, dict(snakemake.output.items())
    )
    log.info("%d architecture x size x source x method means", len(data))
