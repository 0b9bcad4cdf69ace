"""structural: structural-filter % per source, against the untrained network's and its gain."""

import _checkout  # noqa: F401  (this checkout's package)

from medtransfer.io import read_csv, read_json, write_csv
from medtransfer.jobs import job_logging
from medtransfer.reporting import structural_table

with job_logging(snakemake):
    table = structural_table(
        snakemake.params.ft_method,
        [read_json(path) for path in snakemake.input.scores],
        read_csv(snakemake.input.table),
        read_json(snakemake.input.null),
    )
    write_csv(table, snakemake.output[0])
