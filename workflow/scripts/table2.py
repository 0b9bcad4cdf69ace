"""table2: the paper's Table II (CSV, Markdown, LaTeX) and the statistics behind its marks."""

import _checkout  # noqa: F401  (this checkout's package)

from medtransfer.jobs import job_logging
from medtransfer.reporting import write_table2

with job_logging(snakemake) as log:
    runs = list(snakemake.input.runs)
    table = write_table2(
        snakemake.params.table, runs, snakemake.params.sources, dict(snakemake.output.items())
    )
    log.info("Table II with %d rows from %d runs", len(table), len(runs))
