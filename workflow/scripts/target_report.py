"""target_report: ROC curves, training curves, confusion matrices, F1 and clinical-metric
tables of a target."""

import _checkout  # noqa: F401  (this checkout's package)

from medtransfer.jobs import job_logging
from medtransfer.target_report import write_target_report

with job_logging(snakemake):
    write_target_report(
        list(snakemake.input.runs),
        list(snakemake.input.histories),
        dict(snakemake.output.items()),
    )
