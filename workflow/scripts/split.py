from medtransfer import steps

steps.split(snakemake)  # noqa: F821  (snakemake is injected by the script directive)
