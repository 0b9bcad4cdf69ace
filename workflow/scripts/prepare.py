from medtransfer import steps

steps.prepare(snakemake)  # noqa: F821  (snakemake is injected by the script directive)
