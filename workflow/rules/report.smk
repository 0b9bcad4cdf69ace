FILTER_SOURCES = [s for s in SOURCES if s != mtc.NO_SOURCE]
FILTER_LAYERS = config["report"]["filter_layers"]


def get_filter_grids():
    return [
        *expand("results/filters/{source}/kernels.png", source=FILTER_SOURCES),
        *(["results/filters/structural.csv"] if FILTER_SOURCES else []),
    ]


def table2_outputs(prefix):
    return {
        "csv": report(
            f"{prefix}table2.csv",
            caption="../report/table2.rst",
            category="Table II",
        ),
        "md": f"{prefix}table2.md",
        "tex": f"{prefix}table2.tex",
    }


rule table2:
    """The paper's Table II over every target of the grid."""
    input:
        runs=get_run_files(),
    output:
        **table2_outputs("results/"),
    params:
        sources=SOURCES,
    log:
        logfile("table2", "all"),
    script:
        "../scripts/table2.py"


use rule table2 as table2_target with:
    input:
        runs=lambda w: get_run_files(w.target),
    output:
        **table2_outputs("results/{target}/"),
    log:
        logfile("table2", "{target}"),


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
    params:
        sources=SOURCES,
    log:
        logfile("figure", "figure3"),
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
    params:
        layers=FILTER_LAYERS,
        n_filters=config["report"]["filters_per_layer"],
        steps=config["report"]["filter_steps"],
        width=config["width"],
    threads: 2
    resources:
        gpu=1,
    log:
        logfile("filters", "{source}"),
    benchmark:
        benchfile("filters", "{source}")
    script:
        "../scripts/filters.py"


rule structural:
    """Structural-filter percentage per source against its mean fine-tuning gain."""
    input:
        scores=expand("results/filters/{source}/structural.json", source=FILTER_SOURCES),
        table="results/table2.csv",
    output:
        report(
            "results/filters/structural.csv",
            caption="../report/structural.rst",
            category="Filters",
        ),
    log:
        logfile("structural", "all"),
    script:
        "../scripts/structural.py"
