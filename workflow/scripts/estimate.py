"""estimate: every transferability estimator of one (source, target) per seed, and the
k-NN probe of the frozen source network's stages, from the cached `extract` outputs."""

import _checkout  # noqa: F401  (this checkout's package)
import numpy as np

from medtransfer.estimates import estimate_seeds, knn_seeds
from medtransfer.io import read_json, write_csv
from medtransfer.jobs import job_logging

with job_logging(snakemake, skip_teardown=True) as log:
    w, p = snakemake.wildcards, snakemake.params
    features = np.load(snakemake.input.features, mmap_mode="r")
    with np.load(snakemake.input.outputs) as stored:
        outputs = {name: stored[name] for name in stored.files}
    labels = np.asarray(read_json(snakemake.input.meta)["labels"])
    splits = [read_json(path) for path in snakemake.input.splits]
    given = {"architecture": w.arch, "target": w.target, "source": w.source}
    estimates = estimate_seeds(features, outputs, labels, splits, tuple(p.estimators), p.options)
    # all digits: sources' estimates can differ in the sixth (the adaptive grid ranks them)
    write_csv(estimates.assign(**given), snakemake.output.estimates, "%.10g")
    knn = knn_seeds(outputs, labels, splits, p.knn_k)
    write_csv(knn.assign(**given), snakemake.output.knn)
    log.info(
        "%s on %s: %s",
        w.source,
        w.target,
        ", ".join(
            f"{name} {group.score.mean():.4g}"
            for name, group in estimates.groupby("estimator", sort=False)
        ),
    )
