"""What every rule script does first: send the job's logging and stderr (TensorFlow's C++
messages included) to the rule's log file, and log the job's wildcards."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def job_logging(smk: Any) -> Iterator[logging.Logger]:
    """Route stderr and the logging module to the job's log file for the job's lifetime."""
    log_path = smk.log[0] if smk.log else None
    if log_path:
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
    logger.info("rule %s, wildcards %s, threads %s", smk.rule, dict(smk.wildcards), smk.threads)
    try:
        yield logger
    except Exception:
        logger.exception("rule %s failed", smk.rule)
        raise
