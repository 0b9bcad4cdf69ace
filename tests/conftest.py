"""Shared fixtures: where the real sample data is, and one real run of the small grid."""

from __future__ import annotations

import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
# Test this checkout's package, also where another clone is the installed one (the scripts
# folder stays off sys.path: its select_task.py and friends are not importable modules).
runpy.run_path(str(REPO / "workflow" / "scripts" / "_checkout.py"))
from medtransfer.config import apply_includes, load_config, validate_schema  # noqa: E402

SHARED_DATA = Path(os.environ.get("MEDTRANSFER_SHARED_DATA", REPO.parent / "shared" / "data"))


def pytest_collection_modifyitems(config, items):
    """The Slurm test last. It installs Slurm and takes its cluster down after; from then on
    every Snakemake process, whatever its executor, imports the Slurm executor plugin, which
    asks the absent controller for its config (`scontrol show config`: 9 s of retries here).
    test_workflow's ~30 Snakemake calls after it paid that (measured: importing the plugin
    9.3 s with Slurm installed and down)."""
    items.sort(key=lambda item: item.get_closest_marker("slurm") is not None)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "README.md").is_file():
        pytest.skip(f"sample data not found at {SHARED_DATA} (set MEDTRANSFER_SHARED_DATA)")
    return SHARED_DATA


SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def small_config(**overrides) -> dict:
    """The small test config with `overrides`, validated (defaults filled in) as the
    workflow does."""
    config = yaml.safe_load((REPO / "tests" / "configs" / "small.yaml").read_text())
    config.update(overrides)
    validate_schema(config, SCHEMA)
    return config


def read_config(path: Path) -> dict:
    """A config file as the workflow reads it: its `include:` files' declarations taken."""
    config = load_config(path)
    apply_includes(config, REPO)
    return config


def write_config(path: Path, data_root: Path, name: str = "small.yaml", **overrides) -> Path:
    config = yaml.safe_load((REPO / "tests" / "configs" / name).read_text())
    config["data_root"] = str(data_root)
    config.update(overrides)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


ISIC_SAMPLE = {
    "adapter": "csv",
    "path": "isic_archive_sample",
    "labels_csv": "metadata.csv",
    "filename": "{label}/{isic_id}.jpg",
    "label": "benign_malignant",
}  # the sample data's ISIC folder as a csv dataset

NATURAL_IMAGES_COUNTS = {
    "airplane": 727,
    "car": 968,
    "cat": 885,
    "dog": 702,
    "flower": 843,
    "fruit": 1000,
    "motorbike": 788,
    "person": 986,
}  # fmt: skip  (shared/data/README.md)


def snakemake_command(workdir: Path, configfile: Path | None, *args: str) -> list[str]:
    """The command line that runs this checkout's workflow in `workdir`."""
    config = ["--configfile", str(configfile)] if configfile else []
    # --configfile and --config take every word after them: targets go before
    return [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d",
            str(workdir), *args, *config]  # fmt: skip


def snakemake(
    workdir: Path, configfile: Path, *args: str, timeout: int = 600, check: bool = True
) -> subprocess.CompletedProcess:
    """Run the real workflow of this checkout in `workdir`."""
    command = snakemake_command(workdir, configfile, *args)
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({result.returncode}):\n{result.stdout[-4000:]}"
            f"\n{result.stderr[-6000:]}"
        )
    return result


@pytest.fixture(scope="session")
def small_grid(tmp_path_factory, shared_data) -> Path:
    """The small grid (sources none + natural, targets ISIC + blood, FE and FT + SVM,
    2 seeds, 32 px, width 0.25, 2 epochs), run once for every test that reads its outputs."""
    workdir = tmp_path_factory.mktemp("small_grid")
    config = write_config(workdir / "config.yaml", shared_data)
    snakemake(workdir, config, "--cores", "2", timeout=900)
    return workdir


@pytest.fixture()
def copy_of(tmp_path):
    def _copy(workdir: Path) -> Path:
        target = tmp_path / "copy"
        shutil.copytree(workdir, target, symlinks=True)
        return target

    return _copy
