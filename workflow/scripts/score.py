from medtransfer import steps

steps.score(snakemake)  # noqa: F821  (snakemake is injected by the script directive)
