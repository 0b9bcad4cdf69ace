"""figure: the paper's Figure 3, mean AUC per source, FE and FT, with the No-transfer line."""

import _checkout  # noqa: F401  (this checkout's package)

from medtransfer.jobs import job_logging
from medtransfer.reporting import write_figure3

with job_logging(snakemake):
    write_figure3(
        snakemake.params.table,
        snakemake.input.table,
        snakemake.params.sources,
        snakemake.output.png,
        snakemake.output.pdf,
        snakemake.output.data,
    )
