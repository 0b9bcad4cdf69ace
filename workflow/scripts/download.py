"""download: a dataset's files fetched (MedMNIST, a URL, Kaggle), verified and put in place."""

import _checkout  # noqa: F401  (this checkout's package)

from medtransfer.download import download_dataset
from medtransfer.jobs import job_logging

with job_logging(snakemake) as log:
    target = snakemake.output[0]
    log.info("dataset %s: %s -> %s", snakemake.params.dataset, snakemake.params.download, target)
    download_dataset(snakemake.params.download, target, snakemake.params.dataset)
