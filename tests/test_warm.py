"""The warm interpreter: a job handed over runs in a fork of it as it would in a process of
its own (folder, environment, streams, exit status, BLAS threads), a job it cannot serve
runs in its own process, and a job stopped from outside takes its fork with it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medtransfer import warm

REPO = Path(__file__).resolve().parents[1]

# a job's script as the warm interpreter sees one: it hands itself over first thing (as
# _checkout.py does for the workflow's scripts), then reports where and how it ran
JOB = f"""
import json, os, sys, time
sys.path.insert(0, {str(REPO / "src")!r})
from medtransfer import warm
from medtransfer.jobs import PHASES, in_warm_job, process_age
status = warm.hand_over(os.environ.get("JOB_BACKEND") or None)
if status is not None:
    os._exit(status)
from threadpoolctl import threadpool_info
import numpy
if os.environ.get("JOB_SLEEP"):
    open("fork.pid", "w").write(str(os.getpid()))
    time.sleep(float(os.environ["JOB_SLEEP"]))
print(json.dumps({{
    "pid": os.getpid(), "parent": os.getppid(), "cwd": os.getcwd(), "warm": in_warm_job(),
    "value": os.environ.get("JOB_VALUE"), "keras_loaded": "keras" in sys.modules,
    "blas_threads": max(pool["num_threads"] for pool in threadpool_info()),
    "random": numpy.random.random(),
    "age_by_phases": time.monotonic() - PHASES.origin, "age": process_age(),
}}))
print("to stderr", file=sys.stderr)
sys.exit(int(os.environ.get("JOB_STATUS", "0")))
"""


@pytest.fixture(scope="module")
def warm_interpreter(tmp_path_factory):
    """A real warm interpreter (TensorFlow, Keras and scikit-learn imported), this test
    process standing for Snakemake."""
    folder = tmp_path_factory.mktemp("warm")
    process = warm.start("tensorflow", str(REPO / "workflow/scripts"), str(folder / "warm.log"))
    path = warm.socket_path()
    deadline = time.monotonic() + 120
    while not os.path.exists(path):
        assert process.poll() is None, (folder / "warm.log").read_text()
        assert time.monotonic() < deadline, "the warm interpreter did not listen in 120 s"
        time.sleep(0.2)
    yield process
    warm.stop(process)
    assert process.wait(timeout=30) == 0
    assert not os.path.exists(path)  # its socket goes with it


def run_job(folder: Path, **env: str) -> subprocess.CompletedProcess:
    script = folder / "job.py"
    script.write_text(JOB)
    job_env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", **env}
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(script)], cwd=folder, env=job_env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    done.seconds = time.monotonic() - started
    return done


def test_a_job_runs_in_a_fork_as_in_a_process_of_its_own(warm_interpreter, tmp_path):
    done = run_job(tmp_path, JOB_VALUE="seed 3", JOB_STATUS="3")
    assert done.returncode == 3, done.stderr
    ran = json.loads(done.stdout)
    assert ran["warm"] and ran["parent"] == warm_interpreter.pid  # a fork of the warm process
    assert ran["keras_loaded"]  # what it had imported, the job has
    assert ran["cwd"] == str(tmp_path) and ran["value"] == "seed 3"
    assert ran["blas_threads"] == 1
    assert done.stderr.strip() == "to stderr"
    # its phases count from the job's own process, which started before the fork
    assert ran["age"] < ran["age_by_phases"] < done.seconds
    again = json.loads(run_job(tmp_path).stdout)
    assert again["random"] != ran["random"]  # each fork draws its own global random state


def test_a_job_gets_the_blas_threads_snakemake_gives_it(warm_interpreter, tmp_path):
    ran = json.loads(run_job(tmp_path, OPENBLAS_NUM_THREADS="2").stdout)
    assert ran["warm"] and ran["blas_threads"] == 2


def test_a_job_for_another_backend_runs_in_its_own_process(warm_interpreter, tmp_path):
    done = run_job(tmp_path, JOB_BACKEND="jax")
    ran = json.loads(done.stdout)
    assert not ran["warm"] and not ran["keras_loaded"]
    assert json.loads(run_job(tmp_path, JOB_BACKEND="tensorflow").stdout)["warm"]


def test_without_a_warm_interpreter_a_job_runs_in_its_own_process(tmp_path):
    done = run_job(tmp_path, **{warm.ADDRESS_ENV: f"{os.uname().nodename}|{tmp_path}/none"})
    assert done.returncode == 0 and not json.loads(done.stdout)["warm"]


def test_a_stopped_job_takes_its_fork_with_it(warm_interpreter, tmp_path):
    script = tmp_path / "job.py"
    script.write_text(JOB)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "JOB_SLEEP": "120"}
    job = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=env)
    pid_file = tmp_path / "fork.pid"
    deadline = time.monotonic() + 60
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    fork = int(pid_file.read_text())
    assert fork != job.pid
    job.send_signal(signal.SIGTERM)  # as Snakemake stops a job
    job.wait(timeout=10)
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{fork}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{fork}")
    assert json.loads(run_job(tmp_path).stdout)["warm"]  # the warm process serves on


@pytest.mark.parametrize(
    ("setting", "reason"),
    [
        ({"wanted": False}, "warm_start: false"),
        ({"local": False}, "jobs run on other machines"),
        ({"deployed": True}, "conda environments or containers"),
        ({"gpus": 1}, "a GPU is visible"),
        ({"backend": "jax"}, "keras_backend jax"),
        ({"jobs": warm.MIN_JOBS - 1}, "job(s) to run"),
    ],
)
def test_each_reason_a_run_stays_cold_is_said(setting, reason):
    run = {"wanted": True, "local": True, "deployed": False, "backend": "tensorflow",
           "jobs": warm.MIN_JOBS, "gpus": 0}  # fmt: skip
    assert warm.reason_to_stay_cold(**run) is None
    assert reason in warm.reason_to_stay_cold(**{**run, **setting})
