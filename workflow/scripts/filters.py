from medtransfer import steps

steps.filters(snakemake)  # noqa: F821  (snakemake is injected by the script directive)
