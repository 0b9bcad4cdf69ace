"""fetch_imagenet: Keras' VGG16 ImageNet weights from its cache (or downloaded where online)."""

import shutil

import _checkout  # noqa: F401  (this checkout's package)

from medtransfer.imagenet import fetch_weights
from medtransfer.io import atomic_path
from medtransfer.jobs import job_logging

with job_logging(snakemake) as log:
    found = fetch_weights(int(snakemake.wildcards.size), snakemake.params.weights_dir)
    log.info("using ImageNet weights %s", found)
    with atomic_path(snakemake.output[0]) as tmp:
        shutil.copyfile(found, tmp)
