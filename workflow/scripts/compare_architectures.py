"""compare_architectures: mean FT gain over No transfer per architecture and source, and
mean AUC per source and method with one bar group per architecture."""

import _checkout  # noqa: F401  (this checkout's package)

from medtransfer.compare import write_comparison
from medtransfer.jobs import job_logging

with job_logging(snakemake) as log:
    p = snakemake.params
    gains = write_comparison(
        list(snakemake.input.runs),
        p.archs,
        p.sources,
        p.report,
        dict(snakemake.output.items()),
        p.sizes,
    )
    log.info("%d architecture x source gains", len(gains))
