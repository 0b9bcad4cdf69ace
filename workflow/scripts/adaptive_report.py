"""adaptive_report: the sources left out per target, their estimates, the compute saved."""

from pathlib import Path

import _checkout  # noqa: F401  (this checkout's package)

from medtransfer.adaptive import adaptive_markdown, adaptive_table
from medtransfer.io import read_json, write_csv, write_text
from medtransfer.jobs import job_logging

with job_logging(snakemake):
    choices = [read_json(path) for path in snakemake.input.chosen]
    jobs = {key: [Path(p) for p in paths] for key, paths in snakemake.params.jobs.items()}
    table = adaptive_table({(c["target"], c["seed"]): c for c in choices}, jobs)
    write_csv(table, snakemake.output.csv)
    write_text(snakemake.output.md, adaptive_markdown(table, sum(map(len, jobs.values()))))
