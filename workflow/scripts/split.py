"""split: seeded train/val/test indices that keep each group of images in one split."""

import _checkout  # noqa: F401  (this checkout's package)

from medtransfer.io import read_csv, read_json, write_json
from medtransfer.jobs import job_logging
from medtransfer.splits import Duplicates, make_split

with job_logging(snakemake) as log:
    p = snakemake.params
    result = make_split(
        read_json(snakemake.input.meta),
        int(snakemake.wildcards.seed),
        p.val,
        p.test,
        p.mode,
        Duplicates.from_table(read_csv(snakemake.input.pairs)),
        p.merge_near,
        p.on_leak,
        p.size_tolerance,
    )
    log.info(
        "split sizes %s (fractions %s) in %s groups, class weights %s, leakage %s",
        result["counts"],
        result["fractions"]["all"],
        result["groups"],
        result["class_weights"],
        result["leakage"],
    )
    write_json(snakemake.output[0], result)
