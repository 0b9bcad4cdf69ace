rule score:
    """A classifier on features (or pixels) and every metric of one run."""
    input:
        unpack(get_score_inputs),
    output:
        RUN,
    log:
        logfile("score", "{arch}/{target}_{source}_{method}_seed{seed}"),
    benchmark:
        benchfile("score", "{arch}/{target}_{source}_{method}_seed{seed}")
    conda:
        ENV
    threads: 1
    params:
        svm_c=config["classifiers"]["svm_c"],
        class_weights=config["classifiers"]["class_weights"],
        svm_features=config["classifiers"]["svm_features"],
        ordinal=lambda w: config["tasks"][w.target]["ordinal"],
    script:
        "../scripts/score.py"


use rule score as score_fraction with:
    output:
        RUN_FRACTION,
    log:
        logfile("score", "{arch}/{target}_{source}_{method}_seed{seed}_frac{fraction}"),
    benchmark:
        benchfile(
            "score", "{arch}/{target}_{source}_{method}_seed{seed}_frac{fraction}"
        )
