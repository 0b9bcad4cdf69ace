rule table2:
    """The paper's Table II of one architecture over every target of its grid."""
    input:
        runs=get_run_files,
    output:
        **table2_outputs("results/{arch}/"),
    log:
        logfile("table2", "{arch}/all"),
    benchmark:
        benchfile("table2", "{arch}/all")
    conda:
        ENV
    params:
        sources=lambda w: SOURCES_OF[w.arch],
        table=lambda w: GRID.table_settings(GRID.targets(w.arch)),
    script:
        "../scripts/table2.py"


use rule table2 as table2_target with:
    input:
        runs=get_run_files,
    output:
        **table2_outputs("results/{arch}/{target}/"),
    log:
        logfile("table2", "{arch}/{target}"),
    benchmark:
        benchfile("table2", "{arch}/{target}")
    conda:
        ENV
    params:
        sources=lambda w: SOURCES_OF[w.arch],
        table=lambda w: GRID.table_settings([w.target]),


rule primary:
    """The first architecture's Table II and Figure 3 as the grid's (results/table2.csv)."""
    input:
        f"results/{ARCHS[0]}/{{name}}",
    output:
        "results/{name}",
    log:
        logfile("primary", "{name}"),
    wildcard_constraints:
        name="|".join(re.escape(name) for name in PRIMARY),
    conda:
        ENV
    script:
        "../scripts/primary.py"


rule compare_architectures:
    """Architecture x source: mean FT gain over No transfer (table) and mean AUC per source
    and method, one bar group per architecture (figure)."""
    input:
        runs=lambda w: GRID.all_run_files(),
    output:
        csv="results/architectures.csv",
        md="results/architectures.md",
        tex="results/architectures.tex",
        png=report(
            "results/architectures.png",
            caption="../report/architectures.rst",
            category="Architectures",
        ),
    log:
        logfile("compare_architectures", "all"),
    benchmark:
        benchfile("compare_architectures", "all")
    conda:
        ENV
    params:
        archs=ARCHS,
        sizes={arch: GRID.size_of(arch) for arch in ARCHS},
        sources=GRID.sources,
        report={k: config["report"][k] for k in ("fe_method", "ft_method")},
    script:
        "../scripts/compare_architectures.py"


rule compare_resolutions:
    """Architecture x image size: mean AUC per source and method over the targets every
    size ran (table and figure)."""
    input:
        runs=lambda w: GRID.all_run_files(),
    output:
        csv="results/resolution.csv",
        md="results/resolution.md",
        png=report(
            "results/resolution.png",
            caption="../report/resolution.rst",
            category="Resolution",
        ),
    log:
        logfile("compare_resolutions", "all"),
    benchmark:
        benchfile("compare_resolutions", "all")
    conda:
        ENV
    params:
        networks=GRID.networks(),
        sources=GRID.sources,
        report={k: config["report"][k] for k in ("fe_method", "ft_method")},
    script:
        "../scripts/compare_resolutions.py"


rule figure:
    """The paper's Figure 3: mean AUC per source, FE and FT, with the No-transfer line."""
    input:
        table="results/{arch}/table2.csv",
    output:
        png=report(
            "results/{arch}/figure3.png",
            caption="../report/figure3.rst",
            category="Figure 3",
            subcategory="{arch}",
        ),
        pdf="results/{arch}/figure3.pdf",
        data="results/{arch}/figure3.csv",
    log:
        logfile("figure", "{arch}/figure3"),
    benchmark:
        benchfile("figure", "{arch}/figure3")
    conda:
        ENV
    params:
        sources=lambda w: SOURCES_OF[w.arch],
        table=lambda w: GRID.table_settings(GRID.targets(w.arch)),
    script:
        "../scripts/figure.py"


rule filters:
    """Activation maximisation and first-layer kernels of one source network."""
    input:
        source=get_source_model,
    output:
        # the layers shown depend on the architecture: one picture per layer in a folder
        grids=report(
            directory("results/{arch}/filters/{source}/layers"),
            patterns=["{layer}.png"],
            caption="../report/filters.rst",
            category="Filters",
            subcategory="{arch} {source}",
        ),
        kernels="results/{arch}/filters/{source}/kernels.png",
        scores="results/{arch}/filters/{source}/structural.json",
    log:
        logfile("filters", "{arch}/{source}"),
    benchmark:
        benchfile("filters", "{arch}/{source}")
    conda:
        ENV
    threads: 1
    resources:
        gpu=1,
    params:
        layers=lambda w: GRID.filter_layers(w.arch),
        n_filters=config["report"]["filters_per_layer"],
        steps=config["report"]["filter_steps"],
        width=lambda w: GRID.network_params(w.arch)["width"],
        arch="{arch}",
        # the untrained network's seed, as extract's: one frozen 'none' network per grid
        seed=config["pretrain_seed"],
        image_size=lambda w: GRID.size_of(w.arch),
        keras_backend=config["keras_backend"],
    script:
        "../scripts/filters.py"


rule structural:
    """Structural-filter percentage per source, against the untrained network's and against
    its mean fine-tuning gain."""
    input:
        scores=lambda w: expand(
            "results/{arch}/filters/{source}/structural.json",
            arch=w.arch,
            source=GRID.filter_sources(w.arch),
        ),
        null="results/{arch}/filters/none/structural.json",
        table="results/{arch}/table2.csv",
    output:
        report(
            "results/{arch}/filters/structural.csv",
            caption="../report/structural.rst",
            category="Filters",
            subcategory="{arch}",
        ),
    log:
        logfile("structural", "{arch}/all"),
    benchmark:
        benchfile("structural", "{arch}/all")
    conda:
        ENV
    params:
        ft_method=config["report"]["ft_method"],
    script:
        "../scripts/structural.py"


rule target_report:
    """ROC curves, training curves, confusion matrices and F1 tables of one target."""
    input:
        runs=get_run_files,
        histories=get_finetune_histories,
    output:
        roc=report(
            "results/{arch}/{target}/roc.png",
            caption="../report/roc.rst",
            category="Per target",
            subcategory="{arch} {target}",
        ),
        confusion=report(
            "results/{arch}/{target}/confusion.png",
            caption="../report/confusion.rst",
            category="Per target",
            subcategory="{arch} {target}",
        ),
        training=report(
            "results/{arch}/{target}/training_curves.png",
            caption="../report/training.rst",
            category="Per target",
            subcategory="{arch} {target}",
        ),
        f1_csv="results/{arch}/{target}/f1.csv",
        f1_md="results/{arch}/{target}/f1.md",
        classification_report="results/{arch}/{target}/classification_report.txt",
        metrics_csv="results/{arch}/{target}/metrics.csv",
        metrics_md="results/{arch}/{target}/metrics.md",
    log:
        logfile("target_report", "{arch}/{target}"),
    benchmark:
        benchfile("target_report", "{arch}/{target}")
    conda:
        ENV
    script:
        "../scripts/target_report.py"


rule analyse:
    """Source-target similarity and source images per class against the transfer gain."""
    input:
        table="results/{arch}/table2.csv",
        features=lambda w: sorted(
            {f for pair in GRID.similarity_pairs(w.arch) for f in pair[2:]}
        ),
        infos=lambda w: [p for p in GRID.source_infos(w.arch).values() if p],
    output:
        similarity_csv="results/{arch}/analysis/similarity.csv",
        similarity_png=report(
            "results/{arch}/analysis/similarity.png",
            caption="../report/similarity.rst",
            category="Why does it transfer?",
            subcategory="{arch}",
        ),
        data_csv="results/{arch}/analysis/data_per_class.csv",
        correlations="results/{arch}/analysis/correlations.csv",
        data_png=report(
            "results/{arch}/analysis/data_per_class.png",
            caption="../report/data_per_class.rst",
            category="Why does it transfer?",
            subcategory="{arch}",
        ),
    log:
        logfile("analyse", "{arch}/all"),
    benchmark:
        benchfile("analyse", "{arch}/all")
    conda:
        ENV
    params:
        pairs=lambda w: GRID.similarity_pairs(w.arch),
        source_infos=lambda w: GRID.source_infos(w.arch),
        sources=lambda w: SOURCES_OF[w.arch],
        fe_method=config["report"]["fe_method"],
        ft_method=config["report"]["ft_method"],
    script:
        "../scripts/analyse.py"


rule learning_curve:
    """AUC against the fraction of the target's training split."""
    input:
        runs=lambda w: GRID.curve_files(w.arch),
    output:
        csv="results/{arch}/analysis/learning_curves.csv",
        png=report(
            "results/{arch}/analysis/learning_curves.png",
            caption="../report/learning_curves.rst",
            category="Why does it transfer?",
            subcategory="{arch}",
        ),
    log:
        logfile("learning_curve", "{arch}/all"),
    benchmark:
        benchfile("learning_curve", "{arch}/all")
    conda:
        ENV
    script:
        "../scripts/learning_curve.py"
