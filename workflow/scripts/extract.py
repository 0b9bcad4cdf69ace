from medtransfer import steps

steps.extract(snakemake)  # noqa: F821  (snakemake is injected by the script directive)
