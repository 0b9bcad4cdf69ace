"""select: a task's share of its prepared dataset (classes, rows, labels, groups)."""

import _checkout  # noqa: F401  (this checkout's package)

from medtransfer.data import task_meta
from medtransfer.io import read_json, write_json
from medtransfer.jobs import job_logging

with job_logging(snakemake) as log:
    index = snakemake.input.index
    meta = task_meta(read_json(index), snakemake.wildcards.task, index)
    log.info("task %s: %d images, classes %s", meta["task"], meta["n_images"], meta["counts"])
    write_json(snakemake.output.meta, meta)
