"""probes: CKA against depth per source, and the frozen stages' k-NN accuracy, of a target."""

import _checkout  # noqa: F401  (this checkout's package)

from medtransfer.estimates import read_estimates
from medtransfer.io import write_csv
from medtransfer.jobs import job_logging
from medtransfer.probes import read_cka, write_probe_figures

with job_logging(snakemake):
    cka = read_cka(list(snakemake.input.cka))
    knn = read_estimates(list(snakemake.input.knn))
    write_csv(cka, snakemake.output.cka)
    write_probe_figures(cka, knn, snakemake.output.cka_png, snakemake.output.knn_png)
