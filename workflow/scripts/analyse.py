"""analyse: source-target similarity and source images per class against the transfer gain."""

import _checkout  # noqa: F401  (this checkout's package)

from medtransfer.analysis import PAIR_KEYS, write_analysis
from medtransfer.jobs import job_logging

with job_logging(snakemake):
    p = snakemake.params
    write_analysis(
        p.fe_method,
        p.ft_method,
        snakemake.input.table,
        [dict(zip(PAIR_KEYS, pair, strict=True)) for pair in p.pairs],
        p.source_infos,
        dict(snakemake.output.items()),
        p.sources,
    )
