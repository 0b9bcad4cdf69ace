"""prepare: decode every image the config's tasks take from a dataset once, and fingerprint it."""

import _checkout  # noqa: F401  (this checkout's package)

from medtransfer.data import prepare_dataset
from medtransfer.jobs import job_logging

with job_logging(snakemake):
    prepare_dataset(
        snakemake.wildcards.dataset,
        snakemake.params.dataset,
        snakemake.params.tasks,
        snakemake.params.data_root,
        int(snakemake.wildcards.size),
        snakemake.params.limits["max_bad_fraction"],
        snakemake.output.images,
        snakemake.output.index,
        snakemake.threads,
        snakemake.output.fingerprints,
        snakemake.params.limits["max_image_megapixels"],
        snakemake.params.limits["max_array_gb"],
    )
