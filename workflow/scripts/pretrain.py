from medtransfer import steps

steps.pretrain(snakemake)  # noqa: F821  (snakemake is injected by the script directive)
