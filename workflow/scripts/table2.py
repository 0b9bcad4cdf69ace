from medtransfer import steps

steps.table2(snakemake)  # noqa: F821  (snakemake is injected by the script directive)
