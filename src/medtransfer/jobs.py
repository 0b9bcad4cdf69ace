"""What every rule script does first: send the job's logging and stderr (TensorFlow's C++
messages included) to the rule's log file, and log the job's wildcards. At the end the job
logs where its time went (`phases {...}`), which benchmarks/run.py --fixed-cost reads."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

PHASE_LINE = "phases "
WARM_NOTE = ", in a fork of the warm interpreter"
IN_WARM_JOB_ENV = "MEDTRANSFER_WARM_JOB"  # set in a job forked by medtransfer.warm


def in_warm_job() -> bool:
    return IN_WARM_JOB_ENV in os.environ


def process_age() -> float:
    """Seconds since this process started (the interpreter's start-up included)."""
    try:
        ticks = int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19])  # noqa: SIM115
        uptime = float(open("/proc/uptime").read().split()[0])  # noqa: SIM115
        return max(0.0, uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):  # not Linux: count from the first import
        return 0.0


class Phases:
    """Points in a job's life, in seconds since its process started: 'started' (the job's
    own code begins: the interpreter, Snakemake's preamble and the script's imports are
    done), 'imports' (a Keras job's backend set up), 'model' (network built or loaded),
    'first_epoch' or 'first_batch' (graph tracing or compilation plus the first step), then
    the end."""

    def __init__(self, origin: float | None = None) -> None:
        # `origin`: another process's start on the same clock (a job's own process, whose
        # job runs in a fork of the warm interpreter)
        self.origin = time.monotonic() - process_age() if origin is None else origin
        self.points: dict[str, float] = {}
        self.notes: dict[str, Any] = {}

    def mark(self, name: str) -> None:
        self.points.setdefault(name, round(time.monotonic() - self.origin, 3))

    def note(self, key: str, value: Any) -> None:
        self.notes[key] = value

    def summary(self) -> dict[str, Any]:
        return {**self.points, "end": round(time.monotonic() - self.origin, 3), **self.notes}


PHASES = Phases()


def phase(name: str) -> None:
    """Mark a point of the running job (the first mark of a name counts)."""
    PHASES.mark(name)


def failure_line(smk: Any, error: BaseException, log_path: str) -> str:
    """What a failed job says on the console: the rule, its wildcards, the error's own
    message (the reason, which names the file, key or class) and where the traceback is."""
    wildcards = ", ".join(f"{k}={v}" for k, v in dict(smk.wildcards).items())
    return (
        f"medtransfer: rule {smk.rule} ({wildcards}) failed: {type(error).__name__}: {error}\n"
        f"  (traceback in {log_path})\n"
    )


@contextlib.contextmanager
def job_logging(smk: Any, skip_teardown: bool = False) -> Iterator[logging.Logger]:
    """Route stderr and the logging module to the job's log file for the job's lifetime.

    skip_teardown: end the process as soon as the job succeeded. Its outputs are all
    written (atomically) by then, and tearing the interpreter down takes time no output
    depends on: TensorFlow's 1.7 s per Keras job, and 0.36 s of a 2.5 s score job with
    scikit-learn and SciPy loaded (measured: benchmarks/README.md)."""
    log_path = smk.log[0] if smk.log else None
    console = None
    if log_path:
        # the console keeps one line of a failure: Snakemake itself says only "Error in rule"
        console = os.fdopen(os.dup(2), "w", buffering=1)
        os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
        handle = open(log_path, "a", buffering=1)  # noqa: SIM115  closed below
        os.dup2(handle.fileno(), 2)
        sys.stderr = handle
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    logger = logging.getLogger(f"medtransfer.{smk.rule}")
    logger.info("rule %s, wildcards %s, threads %s%s", smk.rule, dict(smk.wildcards), smk.threads,
                WARM_NOTE if in_warm_job() else "")  # fmt: skip
    phase("started")
    try:
        yield logger
    except Exception as error:
        logger.exception("rule %s failed", smk.rule)
        if console:
            console.write(failure_line(smk, error, log_path))
        raise
    logger.info("%s%s", PHASE_LINE, json.dumps(PHASES.summary()))
    if skip_teardown:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
