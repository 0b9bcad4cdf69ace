"""primary: the first architecture's Table II and Figure 3, also at results/."""

import shutil

import _checkout  # noqa: F401  (this checkout's package)

from medtransfer.io import atomic_path
from medtransfer.jobs import job_logging

with job_logging(snakemake):
    with atomic_path(snakemake.output[0]) as tmp:
        shutil.copyfile(snakemake.input[0], tmp)
