"""subsample: a seed's split with only a fraction of each class's training images."""

import _checkout  # noqa: F401  (this checkout's package)
import numpy as np

from medtransfer.io import read_json, write_json
from medtransfer.jobs import job_logging
from medtransfer.splits import subsample_train

with job_logging(snakemake) as log:
    meta = read_json(snakemake.input.meta)
    result = subsample_train(
        read_json(snakemake.input.split),
        np.asarray(meta["labels"]),
        float(snakemake.wildcards.fraction),
        len(meta["classes"]),
    )
    log.info("kept %s training images per class", result["counts"]["train"])
    write_json(snakemake.output[0], result)
