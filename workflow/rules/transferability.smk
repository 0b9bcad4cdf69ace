# Predict before fine-tuning: transferability estimates from the cached frozen features,
# compared with the fine-tuning they predict; the adaptive grid; feature-reuse probes.


rule estimate:
    """Every transferability estimator per seed (train+val rows) and the k-NN probe of the
    frozen stages (train -> test rows), from extract's outputs: no new forward pass."""
    input:
        unpack(lambda w: GRID.estimate_inputs(w.arch, w.target, w.source)),
    output:
        estimates=ESTIMATES,
        knn=KNN,
    log:
        logfile("estimate", "{arch}/{target}_{source}"),
    benchmark:
        benchfile("estimate", "{arch}/{target}_{source}")
    conda:
        ENV
    threads: 1
    params:
        estimators=config["transferability"]["estimators"],
        options={
            "nleep_covariance": config["transferability"]["nleep_covariance"],
            "gbc_gaussian": config["transferability"]["gbc_gaussian"],
        },
        knn_k=config["probes"]["knn_k"],
    script:
        "../scripts/estimate.py"


rule transferability:
    """Each estimator's ranking of the sources against the measured FT and FE gains over No
    transfer: Kendall's tau and weighted tau per target, a bootstrap interval over seeds,
    and the scores against the gains."""
    input:
        estimates=lambda w: GRID.estimates(w.arch),
        runs=get_run_files,
    output:
        estimates="results/{arch}/transferability/estimates.csv",
        tau="results/{arch}/transferability/tau.csv",
        md="results/{arch}/transferability/tau.md",
        png=report(
            "results/{arch}/transferability/estimates.png",
            caption="../report/transferability.rst",
            category="Transferability",
            subcategory="{arch}",
        ),
    log:
        logfile("transferability", "{arch}/all"),
    benchmark:
        benchfile("transferability", "{arch}/all")
    conda:
        ENV
    params:
        report={k: config["report"][k] for k in ("fe_method", "ft_method")},
        bootstrap=config["transferability"]["bootstrap"],
        sources=lambda w: SOURCES_OF[w.arch],
    script:
        "../scripts/transferability.py"


checkpoint choose_sources:
    """The adaptive grid: the top-k sources of a target by their estimate on one seed's
    train+val rows, the only ones fine-tuned on that seed (its test images never inform
    the choice); the DAG below is decided from these files."""
    input:
        estimates=lambda w: GRID.estimates(w.arch, w.target),
    output:
        CHOSEN,
    log:
        logfile("choose_sources", "{arch}/{target}_seed{seed}"),
    conda:
        ENV
    params:
        candidates=lambda w: GRID.candidate_sources(w.arch, w.target),
        seed=lambda w: int(w.seed),
        adaptive=ADAPTIVE,
    script:
        "../scripts/choose_sources.py"


rule adaptive_report:
    """The sources the adaptive grid left out per target, their estimates, and the compute
    saved."""
    input:
        chosen=lambda w: GRID.chosen_files(w.arch),
    output:
        csv="results/{arch}/transferability/adaptive.csv",
        md="results/{arch}/transferability/adaptive.md",
    log:
        logfile("adaptive_report", "{arch}/all"),
    conda:
        ENV
    params:
        jobs=lambda w: GRID.finetune_benchmarks(w.arch),
    script:
        "../scripts/adaptive_report.py"


rule probes:
    """Feature reuse on one target: CKA between each source network and its fine-tuned
    network per stage (from the finetune jobs) and the frozen stages' k-NN accuracy."""
    input:
        cka=lambda w: [f"{d}cka.csv" for d in GRID.finetune_dirs(w.arch, w.target)],
        knn=lambda w: GRID.knn_files(w.arch, w.target),
    output:
        cka="results/{arch}/probes/{target}/cka.csv",
        cka_png=report(
            "results/{arch}/probes/{target}/cka.png",
            caption="../report/probes.rst",
            category="Feature reuse",
            subcategory="{arch} {target}",
        ),
        knn_png="results/{arch}/probes/{target}/knn.png",
    log:
        logfile("probes", "{arch}/{target}"),
    benchmark:
        benchfile("probes", "{arch}/{target}")
    conda:
        ENV
    script:
        "../scripts/probes.py"
