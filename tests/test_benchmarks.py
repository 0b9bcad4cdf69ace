"""The benchmark command runs and prints its table (speed itself is measured, not tested)."""

import subprocess
import sys

import pytest

from .conftest import REPO

pytestmark = pytest.mark.slow


def test_benchmark_command_prints_its_table(shared_data):
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "run.py"),
            "--small",
            "--data",
            str(shared_data),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["comparison", "ours", "baseline", "ratio"]
    assert [line.split(":")[0] for line in lines[1:]] == ["score", "prepare", "extract", "audit"]
