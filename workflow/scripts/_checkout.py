"""Makes `import medtransfer` mean this checkout's src/medtransfer, wherever the workflow runs.

Putting src/ first on sys.path is not enough: an editable install of another checkout (pip
install -e) adds an import hook that is asked before sys.path is searched, so a second clone
would silently run the first clone's code. A finder of our own, first in line, answers for
the package and its modules. Snakemake puts this folder on sys.path for the rule scripts;
the Snakefile and the tests run this file by its path (runpy) instead.
"""

import importlib.abc
import importlib.machinery
import os
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


class ThisCheckout(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname == "medtransfer":
            return importlib.machinery.PathFinder.find_spec(fullname, [str(SRC)])
        if fullname.startswith("medtransfer."):
            return importlib.machinery.PathFinder.find_spec(fullname, path)
        return None


if not any(type(finder).__name__ == "ThisCheckout" for finder in sys.meta_path):
    sys.meta_path.insert(0, ThisCheckout())
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))


def _hand_over_to_the_warm_interpreter():
    """A job's script, first thing: where this run has a warm interpreter (`medtransfer.warm`),
    the job runs in a fork of it and this process only waits for it; else here, as ever."""
    job = getattr(sys.modules["__main__"], "snakemake", None)
    if type(job).__name__ != "Snakemake" or not hasattr(job, "params"):
        return  # not a job's script: the Snakefile, the warm interpreter, a test
    from medtransfer import warm

    training = job.params.get("training")
    status = warm.hand_over(training["keras_backend"] if training else None)
    if status is not None:
        os._exit(status)


_hand_over_to_the_warm_interpreter()
