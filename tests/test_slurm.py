"""The small grid through a real single-node Slurm cluster (../shared/tools/local-slurm.sh).

Needs root and Debian's slurm-wlm, munge and MariaDB (installed by the script); skipped with
the reason printed where the machine cannot run it, or where MEDTRANSFER_SKIP_SLURM is set.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from .conftest import REPO, snakemake_command, write_config

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
CLUSTER = REPO.parent / "shared" / "tools" / "local-slurm.sh"
# This node has 2 CPUs, ~23 GB and one fake GPU: shrink the profile's per-rule requests.
RULES = (
    "prepare",
    "split",
    "pretrain",
    "extract",
    "finetune",
    "score",
    "filters",
    "table2",
    "figure",
    "structural",
    "fetch_imagenet",
)
CI_OVERRIDES = [
    "--default-resources",
    "slurm_partition=debug",
    "slurm_account=ci",
    "mem_mb=1500",
    "runtime=30",
    "--set-resources",
    *[f"{rule}:mem_mb=1500" for rule in RULES],
    "--set-threads",
    *[f"{rule}=1" for rule in RULES],
    "--slurm-init-seconds-before-status-checks",
    "2",
    "--jobs",
    "4",
]


def cluster(action: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(CLUSTER), action], capture_output=True, text=True, timeout=900
    )


@pytest.fixture(scope="module")
def slurm():
    reason = None
    if os.environ.get("MEDTRANSFER_SKIP_SLURM"):
        reason = "MEDTRANSFER_SKIP_SLURM is set"
    elif not CLUSTER.is_file():
        reason = f"{CLUSTER} not found"
    elif os.geteuid() != 0 or not shutil.which("apt-get"):
        reason = "a local Slurm cluster needs root and apt-get"
    if reason:
        print(f"\nSKIPPED Slurm test: {reason}", file=sys.stderr)
        pytest.skip(reason)
    installed = cluster("install")
    assert installed.returncode == 0, installed.stderr[-3000:]
    started = cluster("up")
    try:
        assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-3000:]
        yield
    finally:
        cluster("down")


def test_small_grid_runs_through_slurm(slurm, tmp_path, shared_data):
    config = write_config(tmp_path / "config.yaml", shared_data)
    command = ["timeout", "-k", "30", "1500",
               *snakemake_command(tmp_path, config, "--profile", str(REPO / "profiles" / "slurm"),
                                  *CI_OVERRIDES)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    runs = sorted((tmp_path / "results" / "runs").rglob("seed*.json"))
    assert len(runs) == 16
    assert all(0 <= json.loads(p.read_text())["auc_macro"] <= 1 for p in runs)
    assert (tmp_path / "results" / "table2.csv").is_file()
    accounting = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-a", "-o", "JobName,State,ReqTRES"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    jobs = [line.split("|") for line in accounting.splitlines() if line.strip()]
    completed = [j for j in jobs if j[1] == "COMPLETED"]
    assert len(completed) >= 40, accounting[-2000:]
    gpu_jobs = [j for j in completed if "gpu" in j[2]]
    assert gpu_jobs, "no job asked Slurm for a GPU"
