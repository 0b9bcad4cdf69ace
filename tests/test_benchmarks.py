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
    assert [line.split(":")[0] for line in lines[1:]] == [
        "score",
        "prepare",
        "extract",
        "audit",
        "transferability",
        "train",
    ]


def test_fixed_cost_table_reads_every_keras_job_of_a_grid(small_grid):
    """Every Keras job logs its phases; the table splits each job's time into start-up,
    build, trace and work that add up to what the job's own clock saw."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from grid import fixed_cost, job_phases, job_seconds

    phases = job_phases(small_grid)
    counts = phases.groupby("rule").size().to_dict()
    assert counts == {"extract": 4, "filters": 2, "finetune": 10, "pretrain": 1}
    parts = phases[["startup", "build", "trace", "work"]]
    assert (parts >= 0).all().all()
    assert ((parts.sum(axis=1) - phases.total).abs() < 1e-6).all()
    # a job in a fork of the warm interpreter starts in the time its own process takes to
    # hand it over; one that came before the warm process listened imports Keras itself
    assert phases.warm.sum() >= len(phases) / 2
    assert phases[phases.warm].startup.between(0.05, 1.0).all()
    assert (phases[~phases.warm].startup > 0.5).all()
    # no job's phases outlast Snakemake's measurement of the same job
    measured = job_seconds(small_grid)
    keras_jobs = measured[measured.rule.isin(["pretrain", "extract", "finetune", "filters"])]
    assert phases.total.sum() <= keras_jobs.s.sum() + 1.0
    table = fixed_cost(small_grid)
    assert set(table.rule) == set(counts) and table.fixed_share.between(0, 1).all()


def test_the_bare_baseline_redoes_a_grids_jobs_and_divides(small_grid):
    """benchmarks/bare.py on a finished grid: one job of each rule redone in-process, the
    workflow's seconds of the same jobs beside it with their start-up apart, and a total that
    adds them up."""
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bare.py"), str(small_grid), "--limit", "1"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["rule", "jobs", "workflow_job_s", "startup_s", "bare_s",
                                "ratio", "ratio_less_startup"]  # fmt: skip
    rows = {line.split()[0]: [float(v) for v in line.split()[1:]] for line in lines[1:]}
    assert list(rows) == ["finetune", "extract", "score", "total"]
    for rule in ("finetune", "extract", "score"):
        jobs, ours, startup, bare, _, _ = rows[rule]
        # a job starts an interpreter and imports its packages: seconds, yet less than the job
        assert jobs == 1 and 0.1 < startup < ours and bare > 0, (rule, rows[rule])
    total = [sum(rows[r][i] for r in ("finetune", "extract", "score")) for i in range(4)]
    assert rows["total"][:4] == pytest.approx(total, abs=0.02)
    assert rows["total"][4] == pytest.approx(total[1] / total[3], rel=0.01)
    assert rows["total"][5] == pytest.approx((total[1] - total[2]) / total[3], rel=0.01)


def test_the_gpu_check_runs_dry_on_the_cpu():
    """benchmarks/gpu.sh --dry: the GPU check's own code on the CPU (no GPU here or in CI),
    every installed backend, so that it is known to run before a GPU is lent."""
    result = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu.sh"), "--dry"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "backend tensorflow (dry run on the CPU" in out
    for network in ("vgg16@32px", "vgg16@32px mixed"):
        line = next(x for x in out.splitlines() if x.startswith(network + " "))
        rates = [float(v) for v in line.split()[len(network.split()) : len(network.split()) + 4]]
        assert all(r > 0 for r in rates), line


def test_the_benchmarks_read_the_log_lines_the_jobs_write():
    """benchmarks/grid.py spells the jobs' log markers itself (it imports no package)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import grid

    from medtransfer import jobs

    assert (grid.PHASE_LINE, grid.WARM_NOTE) == (jobs.PHASE_LINE, jobs.WARM_NOTE)


def test_a_grid_for_the_backends_comparison_alone_is_refused_elsewhere():
    """--config names the grid --backends compares; without it the other comparisons would
    run and ignore it."""
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "run.py"), "--config",
                           "config.yaml"], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2 and "--config goes with --backends" in done.stderr
