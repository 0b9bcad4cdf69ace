from medtransfer import steps

steps.figure(snakemake)  # noqa: F821  (snakemake is injected by the script directive)
