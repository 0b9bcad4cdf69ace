"""fetch_imagenet: Keras' ImageNet weights of an architecture, from its cache (or downloaded
where online)."""

import shutil

import _checkout  # noqa: F401  (this checkout's package)

from medtransfer.imagenet import fetch_weights
from medtransfer.io import atomic_path
from medtransfer.jobs import job_logging

with job_logging(snakemake) as log:
    w = snakemake.wildcards
    found = fetch_weights(int(w.size), snakemake.params.weights_dir, w.arch)
    log.info("using ImageNet weights %s", found)
    with atomic_path(snakemake.output[0]) as tmp:
        shutil.copyfile(found, tmp)
