from medtransfer import steps

steps.structural(snakemake)  # noqa: F821  (snakemake is injected by the script directive)
