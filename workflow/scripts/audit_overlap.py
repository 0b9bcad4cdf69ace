"""audit_overlap: images of a source task that reappear in a target task."""

import _checkout  # noqa: F401  (this checkout's package)

from medtransfer.audit import audit_overlap, overlap_message
from medtransfer.errors import DataError
from medtransfer.io import read_json
from medtransfer.jobs import job_logging

with job_logging(snakemake) as log:
    i, p = snakemake.input, snakemake.params
    summary = audit_overlap(
        read_json(i.source_meta),
        i.source_fingerprints,
        read_json(i.target_meta),
        i.target_fingerprints,
        snakemake.output.pairs,
        snakemake.output.summary,
        p.near_bits,
        p.near_correlation,
    )
    if not (summary["exact_pairs"] or summary["near_pairs"]):
        log.info("no image of %s reappears in %s", summary["source"], summary["target"])
    elif p.on_overlap == "error":
        raise DataError(overlap_message(summary) + "; set audit.on_overlap: warn to go on anyway")
    else:
        log.warning(overlap_message(summary))
