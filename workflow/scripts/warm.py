"""The warm interpreter of a local run (medtransfer.warm): started by the workflow's
`onstart`, ended by `onsuccess` or `onerror`, or when Snakemake is gone."""

import sys

import _checkout  # noqa: F401  (this checkout's package)

from medtransfer import warm

warm.main(sys.argv[1:])
