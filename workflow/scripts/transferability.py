"""transferability: estimators' rankings of the sources against the measured gains."""

import _checkout  # noqa: F401  (this checkout's package)

from medtransfer.jobs import job_logging
from medtransfer.ranking import write_transferability_report

with job_logging(snakemake) as log:
    table = write_transferability_report(
        list(snakemake.input.estimates),
        list(snakemake.input.runs),
        snakemake.params.report,
        snakemake.params.bootstrap,
        dict(snakemake.output.items()),
        list(snakemake.params.sources),
    )
    log.info("%d tau rows, %d with a value", len(table), int(table.tau.notna().sum()))
