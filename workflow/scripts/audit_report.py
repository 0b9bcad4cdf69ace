import _checkout  # noqa: F401  (this checkout's src/ on sys.path)

from medtransfer import steps

steps.audit_report(snakemake)  # noqa: F821  (snakemake is injected by the script directive)
