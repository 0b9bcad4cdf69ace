"""audit_report: the audit of the whole grid as CSV tables and one Markdown summary."""

import _checkout  # noqa: F401  (this checkout's package)

from medtransfer.audit import write_audit_report
from medtransfer.jobs import job_logging

with job_logging(snakemake):
    write_audit_report(
        snakemake.input.tasks,
        snakemake.input.overlaps,
        snakemake.input.splits,
        dict(snakemake.output.items()),
    )
