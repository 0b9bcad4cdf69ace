from medtransfer import steps

steps.finetune(snakemake)  # noqa: F821  (snakemake is injected by the script directive)
