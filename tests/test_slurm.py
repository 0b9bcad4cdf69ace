"""A small grid through a real single-node Slurm cluster (../shared/tools/local-slurm.sh).

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


def test_a_grid_runs_through_slurm(slurm, tmp_path, shared_data):
    """Every stage once (prepare to Table II, an FE and an FT run of one target): what the
    profile submits and how. The whole small grid took 10 of CI's 49 minutes here, one job
    per core with Slurm's start-up each; it adds nothing the Slurm path would not show."""
    config = write_config(tmp_path / "config.yaml", shared_data, "fault.yaml",
                          methods=["fe-svm", "ft-svm"])  # fmt: skip
    command = ["timeout", "-k", "30", "1500",
               *snakemake_command(tmp_path, config, "--profile", str(REPO / "profiles" / "slurm"),
                                  *CI_OVERRIDES)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    runs = [
        p for p in (tmp_path / "results/vgg16/runs").rglob("seed*.json") if "_frac" not in p.name
    ]
    assert len(runs) == 2
    assert all(0 <= json.loads(p.read_text())["auc_macro"] <= 1 for p in runs)
    assert (tmp_path / "results" / "table2.csv").is_file()
    # sacct's record of every job this cluster ran, with the sbatch line that submitted it
    accounting = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-a", "-S", "now-2hours", "-o", "State,SubmitLine"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    mine = [line for line in accounting.splitlines() if f"-D {tmp_path} " in line]
    jobs = [line.split("|", 1) for line in mine if "--comment rule_" in line]
    completed = [line for state, line in jobs if state == "COMPLETED"]
    assert len(completed) >= 10, accounting[-2000:]
    finetune = [line for line in completed if "--comment rule_finetune" in line]
    score = [line for line in completed if "--comment rule_score" in line]
    assert finetune and all("--gpus=1" in line for line in finetune)  # Keras rules: a GPU
    assert score and not any("--gpus" in line for line in score)  # CPU rules: none
