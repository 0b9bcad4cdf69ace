rule table2:
    """The paper's Table II over every target of the grid."""
    input:
        runs=get_run_files(),
    output:
        **table2_outputs("results/"),
    log:
        logfile("table2", "all"),
    benchmark:
        benchfile("table2", "all")
    conda:
        ENV
    params:
        sources=SOURCES,
        table=table_settings(config["targets"]),
    script:
        "../scripts/table2.py"


use rule table2 as table2_target with:
    input:
        runs=lambda w: get_run_files(w.target),
    output:
        **table2_outputs("results/{target}/"),
    log:
        logfile("table2", "{target}"),
    benchmark:
        benchfile("table2", "{target}")
    conda:
        ENV
    params:
        sources=SOURCES,
        table=lambda w: table_settings([w.target]),


rule figure:
    """The paper's Figure 3: mean AUC per source, FE and FT, with the No-transfer line."""
    input:
        table="results/table2.csv",
    output:
        png=report(
            "results/figure3.png", caption="../report/figure3.rst", category="Figure 3"
        ),
        pdf="results/figure3.pdf",
        data="results/figure3.csv",
    log:
        logfile("figure", "figure3"),
    benchmark:
        benchfile("figure", "figure3")
    conda:
        ENV
    params:
        sources=SOURCES,
        table=table_settings(config["targets"]),
    script:
        "../scripts/figure.py"


rule filters:
    """Activation maximisation and first-layer kernels of one source network."""
    input:
        source=get_source_model,
    output:
        grids=report(
            expand("results/filters/{{source}}/{layer}.png", layer=FILTER_LAYERS),
            caption="../report/filters.rst",
            category="Filters",
            subcategory="{source}",
        ),
        kernels="results/filters/{source}/kernels.png",
        scores="results/filters/{source}/structural.json",
    log:
        logfile("filters", "{source}"),
    benchmark:
        benchfile("filters", "{source}")
    conda:
        ENV
    threads: 1
    resources:
        gpu=1,
    params:
        layers=FILTER_LAYERS,
        n_filters=config["report"]["filters_per_layer"],
        steps=config["report"]["filter_steps"],
        width=config["width"],
        image_size=SIZE,
    script:
        "../scripts/filters.py"


rule structural:
    """Structural-filter percentage per source, against the untrained network's and against
    its mean fine-tuning gain."""
    input:
        scores=expand("results/filters/{source}/structural.json", source=FILTER_SOURCES),
        null=NULL_FILTERS,
        table="results/table2.csv",
    output:
        report(
            "results/filters/structural.csv",
            caption="../report/structural.rst",
            category="Filters",
        ),
    log:
        logfile("structural", "all"),
    benchmark:
        benchfile("structural", "all")
    conda:
        ENV
    params:
        ft_method=config["report"]["ft_method"],
    script:
        "../scripts/structural.py"


rule target_report:
    """ROC curves, training curves, confusion matrices and F1 tables of one target."""
    input:
        runs=lambda w: get_run_files(w.target),
        histories=get_finetune_histories,
    output:
        roc=report(
            "results/{target}/roc.png",
            caption="../report/roc.rst",
            category="Per target",
            subcategory="{target}",
        ),
        confusion=report(
            "results/{target}/confusion.png",
            caption="../report/confusion.rst",
            category="Per target",
            subcategory="{target}",
        ),
        training=report(
            "results/{target}/training_curves.png",
            caption="../report/training.rst",
            category="Per target",
            subcategory="{target}",
        ),
        f1_csv="results/{target}/f1.csv",
        f1_md="results/{target}/f1.md",
        classification_report="results/{target}/classification_report.txt",
    log:
        logfile("target_report", "{target}"),
    benchmark:
        benchfile("target_report", "{target}")
    conda:
        ENV
    script:
        "../scripts/target_report.py"


rule analyse:
    """Source-target similarity and source images per class against the transfer gain."""
    input:
        table="results/table2.csv",
        features=sorted({f for pair in similarity_pairs() for f in pair[2:]}),
        infos=[path for path in source_infos().values() if path],
    output:
        similarity_csv="results/analysis/similarity.csv",
        similarity_png=report(
            "results/analysis/similarity.png",
            caption="../report/similarity.rst",
            category="Why does it transfer?",
        ),
        data_csv="results/analysis/data_per_class.csv",
        correlations="results/analysis/correlations.csv",
        data_png=report(
            "results/analysis/data_per_class.png",
            caption="../report/data_per_class.rst",
            category="Why does it transfer?",
        ),
    log:
        logfile("analyse", "all"),
    benchmark:
        benchfile("analyse", "all")
    conda:
        ENV
    params:
        pairs=similarity_pairs(),
        source_infos=source_infos(),
        fe_method=config["report"]["fe_method"],
        ft_method=config["report"]["ft_method"],
    script:
        "../scripts/analyse.py"


rule learning_curve:
    """AUC against the fraction of the target's training split."""
    input:
        runs=get_curve_files(),
    output:
        csv="results/analysis/learning_curves.csv",
        png=report(
            "results/analysis/learning_curves.png",
            caption="../report/learning_curves.rst",
            category="Why does it transfer?",
        ),
    log:
        logfile("learning_curve", "all"),
    benchmark:
        benchfile("learning_curve", "all")
    conda:
        ENV
    script:
        "../scripts/learning_curve.py"
