from medtransfer import steps

steps.fetch_imagenet(snakemake)  # noqa: F821  (snakemake is injected by the script directive)
