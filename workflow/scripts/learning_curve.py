"""learning_curve: AUC against the fraction of the target's training split."""

import _checkout  # noqa: F401  (this checkout's package)

from medtransfer.analysis import write_learning_curves
from medtransfer.jobs import job_logging

with job_logging(snakemake):
    write_learning_curves(list(snakemake.input.runs), snakemake.output.csv, snakemake.output.png)
