"""Lets the rule scripts import medtransfer from this checkout even where it is not installed
(a conda env that holds only its dependencies). Snakemake puts this folder on sys.path."""

import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[2] / "src")
if SRC not in sys.path:
    sys.path.insert(0, SRC)
