"""choose_sources: the adaptive grid's top-k sources of one target and seed by that seed's
estimates (computed on its train+val rows only)."""

import _checkout  # noqa: F401  (this checkout's package)

from medtransfer.adaptive import choose_sources
from medtransfer.estimates import read_estimates
from medtransfer.io import write_json
from medtransfer.jobs import job_logging

with job_logging(snakemake) as log:
    p = snakemake.params
    choice = choose_sources(
        read_estimates(list(snakemake.input.estimates)),
        p.adaptive["estimator"],
        p.adaptive["top_k"],
        list(p.candidates),
        p.seed,
    )
    write_json(snakemake.output[0], {"target": snakemake.wildcards.target, **choice})
    log.info("seed %d: fine-tuning %s; left out %s", p.seed, choice["selected"], choice["left_out"])
