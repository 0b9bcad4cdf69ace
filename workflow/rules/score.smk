rule score:
    """A classifier on features (or pixels) and every metric of one run."""
    input:
        unpack(get_score_inputs),
    output:
        RUN,
    params:
        svm_c=config["classifiers"]["svm_c"],
    threads: 1
    log:
        logfile("score", "{target}_{source}_{method}_seed{seed}"),
    benchmark:
        benchfile("score", "{target}_{source}_{method}_seed{seed}")
    script:
        "../scripts/score.py"
