"""Crashes lose nothing: a fine-tuning job killed mid-training resumes to the same result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from .conftest import snakemake, snakemake_command, write_config

pytestmark = pytest.mark.slow

RUN = "results/{arch}/runs/isic/none/ft-svm/seed0.json"
CHECKPOINT = "results/{arch}/checkpoints/finetune/isic/none/all/seed0/state.json"
METRICS = (
    "auc_macro",
    "auc_per_class",
    "accuracy",
    "confusion_matrix",
    "test_scores",
    "epochs_run",
    "best_epoch",
)


# The whole workflow, killed mid-training, on the paper's VGG16; that batch norm's moving
# statistics resume too is tested in test_models.py (the same train()).
@pytest.mark.parametrize("arch", ["vgg16"])
def test_killed_finetune_resumes_to_identical_metrics(tmp_path, shared_data, arch):
    run_file, checkpoint = RUN.format(arch=arch), CHECKPOINT.format(arch=arch)
    reference_dir, killed_dir = tmp_path / "reference", tmp_path / "killed"
    for folder in (reference_dir, killed_dir):
        folder.mkdir()
        write_config(folder / "config.yaml", shared_data, "fault.yaml", architectures=[arch])
    # the run record alone: the reports after it would add a minute and test nothing here
    snakemake(reference_dir, reference_dir / "config.yaml", "--cores", "2", run_file)
    reference = json.loads((reference_dir / run_file).read_text())

    command = snakemake_command(killed_dir, killed_dir / "config.yaml", "--cores", "2", run_file)
    job = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    state = killed_dir / checkpoint
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and job.poll() is None:
        if state.is_file() and json.loads(state.read_text())["next_epoch"] >= 2:
            break
        time.sleep(0.05)
    assert job.poll() is None, "the grid finished before it could be killed"
    os.killpg(job.pid, signal.SIGKILL)  # the node dies: Snakemake and its job at once
    job.wait()
    killed_at = json.loads(state.read_text())["next_epoch"]
    assert 2 <= killed_at < 6 and not (killed_dir / run_file).exists()

    upstream = sorted((killed_dir / "results" / "prepared").rglob("*")) + sorted(
        (killed_dir / "results" / "splits").rglob("*.json")
    )
    stamps = {path: path.stat().st_mtime_ns for path in upstream if path.is_file()}
    snakemake(killed_dir, killed_dir / "config.yaml", "--unlock")
    snakemake(
        killed_dir, killed_dir / "config.yaml", "--cores", "2", "--rerun-incomplete", run_file
    )

    log = (killed_dir / f"logs/finetune/{arch}/isic_none_all_seed0.log").read_text()
    assert "resuming from checkpoint" in log and f"at epoch {killed_at + 1}" in log
    resumed = json.loads((killed_dir / run_file).read_text())
    for key in METRICS:
        assert resumed[key] == reference[key], key
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps, "an upstream job re-ran"
    assert not (killed_dir / checkpoint).parent.exists(), "checkpoint left after completion"
    leftovers = [p for p in (killed_dir / "results").rglob(".tmp-*")]
    assert not leftovers, leftovers


def test_skipped_images_reach_the_run_json(small_grid):
    meta = json.loads((small_grid / "results/tasks/isic/32px/meta.json").read_text())
    run = json.loads((small_grid / "results/vgg16/runs/isic/none/fe-svm/seed0.json").read_text())
    assert run["skipped_images"] == len(meta["skipped"])


def test_no_temporary_files_or_checkpoints_remain(small_grid):
    results = Path(small_grid) / "results"
    assert not list(results.rglob(".tmp-*"))
    assert not any(p.is_file() for p in (results / "checkpoints").rglob("*"))


def test_config_that_is_not_yaml_fails_naming_the_file(tmp_path):
    (tmp_path / "config.yaml").write_text("sources: [none\n  targets: {")
    command = snakemake_command(tmp_path, None, "-n", "--cores", "1")
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "config.yaml is not valid YAML" in result.stdout + result.stderr


def test_a_failed_jobs_own_message_reaches_the_console(tmp_path):
    """A labels file without the configured column: the reason is on Snakemake's console
    output, not only in the job's log."""
    folder = tmp_path / "data" / "lesions"
    folder.mkdir(parents=True)
    (folder / "metadata.csv").write_text("isic_id,diagnosis\nISIC_1,nevus\n")
    config = {
        "image_size": 32,
        "datasets": {
            "lesions": {
                "adapter": "csv",
                "path": "lesions",
                "labels_csv": "metadata.csv",
                "label": "benign_malignant",
                "filename": "{isic_id}.jpg",
            }
        },  # fmt: skip
        "tasks": {"isic": {"dataset": "lesions"}},
        "sources": ["none"],
        "targets": ["isic"],
        "methods": ["fe-svm"],
        "seeds": [0],
        "data_root": str(tmp_path / "data"),
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    command = snakemake_command(tmp_path, path, "--cores", "1", "--workflow-profile", "none")
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    console = result.stdout + result.stderr
    assert "medtransfer: rule prepare (dataset=lesions, size=32) failed: DataError:" in console
    assert "benign_malignant" in console.split("medtransfer: rule prepare", 1)[1].split("\n")[0]


def test_an_alias_bomb_in_a_config_fails_within_seconds_naming_the_key(tmp_path, shared_data):
    """Under an unknown key the bomb once hung Snakemake (2.4 GB, no output in 180 s)."""
    from .test_config import alias_bomb

    config = write_config(tmp_path / "config.yaml", shared_data)
    bomb = alias_bomb(9).replace("label_names:", "bomb:")
    config.write_text(config.read_text() + bomb)
    command = snakemake_command(tmp_path, config, "-n", "--cores", "1")
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "'bomb' expands to over 100,000 values" in result.stdout + result.stderr


def test_sigterm_stops_a_grid_cleanly_after_its_running_jobs(tmp_path, shared_data):
    """`kill <snakemake pid>` (SIGTERM): Snakemake starts no new job, lets the running one
    finish, and leaves no process behind; the next run goes on from there, redoing nothing."""
    config = write_config(tmp_path / "config.yaml", shared_data, "fault.yaml")
    run_file = RUN.format(arch="vgg16")  # the run record alone, as in the test above
    command = snakemake_command(tmp_path, config, "--cores", "2", run_file)
    job = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    state = tmp_path / CHECKPOINT.format(arch="vgg16")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and job.poll() is None and not state.is_file():
        time.sleep(0.05)
    assert job.poll() is None, "the grid finished before it could be stopped"
    os.kill(job.pid, signal.SIGTERM)  # Snakemake alone, as `kill PID` does
    job.wait(timeout=300)
    with pytest.raises(ProcessLookupError):  # nothing of the grid is still running
        os.killpg(job.pid, 0)
    finetuned = tmp_path / "results/vgg16/finetune/isic/none/all/seed0/training.json"
    assert finetuned.is_file(), "the running fine-tuning job did not finish"
    assert not (tmp_path / run_file).exists(), "a job started after SIGTERM"
    stamp = finetuned.stat().st_mtime_ns
    snakemake(tmp_path, config, "--cores", "2", run_file)
    assert (tmp_path / run_file).is_file()
    assert finetuned.stat().st_mtime_ns == stamp, "the finished fine-tuning ran again"


def test_a_run_that_ends_keeps_another_runs_locks(tmp_path, shared_data):
    """Snakemake >= 9.17 removed every lock when any run ended; the workflow keeps the other
    runs' (medtransfer.snakemake_locks), and `--unlock` still clears them all."""
    config = write_config(tmp_path / "config.yaml", shared_data, "fault.yaml")
    locks = tmp_path / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    other = locks / "7.output.lock"  # what a run on another target holds
    other.write_text(f"{tmp_path}/results/vgg16/runs/blood/none/ft-svm/seed0.json\n")
    snakemake(tmp_path, config, "results/prepared/isic_archive/32px/index.json", "--cores", "1")
    assert (tmp_path / "results/prepared/isic_archive/32px/index.json").is_file()
    assert other.is_file(), "the ending run removed another run's lock"
    assert [p.name for p in locks.iterdir()] == [other.name], "it left its own locks"
    snakemake(tmp_path, config, "--unlock")
    assert not other.exists()
