"""Keras backends: the choice is made before Keras starts, refused clearly where impossible,
and a grid runs and repeats itself on an alternative backend (PyTorch in CI)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from medtransfer import runtime

from .conftest import snakemake, write_config

ALTERNATIVE = next((b for b in ("torch", "jax") if importlib.util.find_spec(b) is not None), None)


@pytest.mark.slow  # a fresh process that imports Keras: 6 s
def test_keras_starts_without_the_optional_packages_a_job_does_not_use():
    """scikit-learn and matplotlib.pyplot were 2-2.5 s of every Keras job's start-up, for
    Keras parts no job uses; they stay importable after it, and Keras works."""
    code = (
        "import sys\n"
        "from medtransfer import runtime\n"
        "runtime.configure(1, 0)\n"
        "print(sorted(m for m in runtime.KERAS_OPTIONAL if m in sys.modules))\n"
        "import keras, matplotlib.pyplot, numpy\n"
        "from sklearn.svm import SVC\n"
        "model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])\n"
        "print(model.predict(numpy.ones((1, 3)), verbose=0).shape, SVC.__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["[]", "(1, 2) SVC"]


def test_host_names_this_cpu_and_its_vector_extensions():
    """What a run record says of the CPU whose arithmetic made it, read from this machine's
    /proc/cpuinfo (CI's is Linux): its model and the extensions kernels dispatch on."""
    import platform
    from pathlib import Path

    host = runtime.host()
    assert host["machine"] == platform.machine()
    cpuinfo = Path("/proc/cpuinfo").read_text()
    assert f": {host['cpu']}" in cpuinfo
    flags = {f for line in cpuinfo.splitlines() if line.startswith("flags") for f in line.split()}
    assert set(host["vector_extensions"]) <= flags
    assert ("avx2" in flags) == ("avx2" in host["vector_extensions"])
    assert not any(f.startswith(("pse", "vme", "msr")) for f in host["vector_extensions"])
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    assert host["gpus"] == runtime.visible_gpu_names(runtime.gpu_listing(), visible)


def test_a_jobs_gpus_are_those_cuda_visible_devices_lets_it_see():
    listing = (
        "GPU 0: NVIDIA H200 (UUID: GPU-1a2b)\n"
        "GPU 1: NVIDIA A100-SXM4-80GB (UUID: GPU-3c4d)\n"
        "  MIG 3g.40gb     Device  0: (UUID: MIG-5e6f)\n"
    )
    assert runtime.visible_gpu_names(listing, None) == ["NVIDIA H200", "NVIDIA A100-SXM4-80GB"]
    assert runtime.visible_gpu_names(listing, "1") == ["NVIDIA A100-SXM4-80GB"]
    assert runtime.visible_gpu_names(listing, "GPU-1a2b, 1") == [
        "NVIDIA H200",
        "NVIDIA A100-SXM4-80GB",
    ]
    assert runtime.visible_gpu_names(listing, "") == []  # hidden from every GPU
    assert runtime.visible_gpu_names("", None) == []  # no driver


def test_unknown_backend_names_the_key():
    with pytest.raises(runtime.BackendError, match="keras_backend: 'theano' is not one of"):
        runtime.select_backend("theano")


def test_missing_backend_names_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "jax" else real(name, *a)
    )
    with pytest.raises(runtime.BackendError, match=r"jax is not installed.*\.\[jax\]"):
        runtime.select_backend("jax")


@pytest.mark.slow  # two fresh processes that import Keras: 10 s
@pytest.mark.skipif(ALTERNATIVE is None, reason="neither torch nor jax is installed")
def test_backend_is_chosen_before_keras_starts():
    """In a fresh process: configure() sets the backend, and a second, different choice
    after Keras started is refused instead of silently ignored."""
    code = (
        "from medtransfer import runtime\n"
        f"runtime.configure(1, 0, backend={ALTERNATIVE!r})\n"
        "import keras\n"
        "print(keras.backend.backend())\n"
        "try:\n"
        "    runtime.select_backend('tensorflow')\n"
        "except runtime.BackendError as error:\n"
        "    print(error)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = out.stdout.splitlines()
    assert lines[0] == ALTERNATIVE
    assert f"Keras already runs on {ALTERNATIVE}" in lines[1]


@pytest.mark.slow
@pytest.mark.skipif(ALTERNATIVE is None, reason="neither torch nor jax is installed")
def test_grid_runs_and_repeats_on_the_alternative_backend(tmp_path, shared_data):
    """The small grid's blood half (pretrain, extract, fine-tune, filters, score) on the
    alternative backend; a second fine-tuning with the same seed gives the same metrics."""
    config = write_config(
        tmp_path / "config.yaml",
        shared_data,
        keras_backend=ALTERNATIVE,
        targets=["blood"],
        seeds=[0],
        learning_curve={},
    )
    run_file = tmp_path / "results/vgg16/runs/blood/natural/ft-svm/seed0.json"
    fe_file = tmp_path / "results/vgg16/runs/blood/natural/fe-svm/seed0.json"
    filters = tmp_path / "results/vgg16/filters/natural/structural.json"
    # these files alone: the reports after them read no network and would add a minute
    targets = [str(p.relative_to(tmp_path)) for p in (run_file, fe_file, filters)]
    snakemake(tmp_path, config, "--cores", "2", *targets, timeout=900)
    first = json.loads(run_file.read_text())
    assert first["keras_backend"] == ALTERNATIVE
    fe = json.loads(fe_file.read_text())
    assert fe["keras_backend"] == ALTERNATIVE and 0 <= fe["auc_macro"] <= 1
    structural = json.loads(filters.read_text())
    assert 0 <= structural["structural_percent"] <= 100
    snakemake(tmp_path, config, "--cores", "2", str(run_file.relative_to(tmp_path)),
              "--forcerun", "finetune")  # fmt: skip
    again = json.loads(run_file.read_text())
    for key in ("auc_macro", "accuracy", "confusion_matrix", "test_scores"):
        assert again[key] == first[key], key


def test_jobs_without_a_network_never_import_keras():
    """score, the reports, the statistics and the audit need NumPy and scikit-learn only:
    importing Keras (4 s with TensorFlow) in each of them would be pure start-up cost."""
    modules = ["adapters", "adaptive", "analysis", "audit", "classifiers", "compare",
               "config", "data", "download", "duplicates", "errors", "estimates",
               "fingerprints", "filters", "grid", "io", "jobs", "metrics", "probes", "ranking",
               "reporting", "resolution", "runs", "runtime", "splits", "stats", "tables",
               "target_report"]  # fmt: skip
    code = (
        "import sys\n"
        + "".join(f"import medtransfer.{name}\n" for name in modules)
        + "print(sorted(m for m in ('keras', 'tensorflow', 'torch', 'jax') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
