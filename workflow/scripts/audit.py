"""audit: exact and near-duplicate images within one task."""

import _checkout  # noqa: F401  (this checkout's package)

from medtransfer.audit import audit_task
from medtransfer.io import read_json
from medtransfer.jobs import job_logging

with job_logging(snakemake) as log:
    summary = audit_task(
        read_json(snakemake.input.meta),
        snakemake.input.fingerprints,
        snakemake.output.pairs,
        snakemake.output.summary,
        snakemake.params.near_bits,
        snakemake.params.near_correlation,
    )
    log.info("audit of task %s: %s", snakemake.wildcards.task, summary)
