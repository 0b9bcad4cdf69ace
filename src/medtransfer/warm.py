"""A warm interpreter for the jobs of a local run.

Every Snakemake job is a process of its own, and on 2 cores most of a short job was that
process starting: `import tensorflow` with Keras (3.5 s of a first-run fine-tuning job), or
scikit-learn (1.3 s of a score job's 1.7 s; benchmarks/README.md). A local run therefore
starts one process that imports them once and then waits. Each job's script, started by
Snakemake as before, hands itself over to it first thing (`_checkout.py`): the warm process
forks, the fork takes the job's working folder, environment and standard streams and runs
the job's script, and the script's own process waits for it and exits with its status.
One job per seed stays, and so does everything Snakemake sees of a job: its command, log,
outputs, exit status, and its end when Snakemake stops it (the fork goes with it).

A fork starts where a fresh process would: no Keras state (the warm process builds
nothing and never starts the backend's runtime, so each job sets its own threads and
seed), its BLAS threads set to the job's, Python's and NumPy's global random state drawn
anew. Where a fork could not stand for a fresh process, jobs run in their own process as
before; `reason_to_stay_cold` says which (another machine, another Python, a GPU: never
tried on one).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import random
import runpy
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

from . import jobs

ADDRESS_ENV = "MEDTRANSFER_WARM"  # "<host>|<socket path>", for the jobs of this run
# the backends whose import a fork may share: JAX reads its XLA flags when it starts
WARM_BACKENDS = ("tensorflow", "torch")
# a warm start costs one import of each package (about 5 s of a core here) and saves a
# job 1.5-3.5 s: fewer jobs than this are not worth it
MIN_JOBS = 4
# what the jobs import, beyond the backend and Keras (scikit-learn after Keras: Keras must
# start without it, see runtime.import_keras)
PRELOAD = ("numpy", "scipy.stats", "pandas", "PIL.Image", "sklearn.svm",
           "sklearn.linear_model", "sklearn.metrics", "sklearn.mixture", "sklearn.neighbors",
           "sklearn.preprocessing", "sklearn.pipeline", "snakemake.script")  # fmt: skip
# the thread counts Snakemake gives a job's linear algebra; the warm process starts with one
BLAS_THREAD_ENV = ("OMP_NUM_THREADS", "GOTO_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                   "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")  # fmt: skip
MESSAGE_BYTES = 1 << 20


def reason_to_stay_cold(
    wanted: bool, local: bool, deployed: bool, backend: str, jobs: int, gpus: int
) -> str | None:
    """Why this run's jobs start their own processes; None: a warm interpreter serves them."""
    if not wanted:
        return "warm_start: false"
    if not local:
        return "jobs run on other machines"
    if deployed:
        return "jobs run in conda environments or containers, with their own Python"
    if not hasattr(os, "pidfd_open"):
        return "not Linux"
    if gpus:
        return "a GPU is visible (forking a process that loaded CUDA's libraries is untried)"
    if backend not in WARM_BACKENDS:
        return f"keras_backend {backend} starts for each job"
    if jobs < MIN_JOBS:
        return f"{jobs} job(s) to run"
    return None


def socket_path() -> str:
    return os.path.join(tempfile.gettempdir(), f"medtransfer-warm-{os.getuid()}-{os.getpid()}")


def start(backend: str, scripts: str, log_path: str) -> subprocess.Popen:
    """Start the warm interpreter of this run (this process: Snakemake) and tell the jobs
    where it listens. A job that comes before it listens starts its own process."""
    path = socket_path()
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log:
        process = subprocess.Popen(
            [sys.executable, f"{scripts}/warm.py", path, backend, str(os.getpid())],
            env={**os.environ, **dict.fromkeys(BLAS_THREAD_ENV, "1")},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    os.environ[ADDRESS_ENV] = f"{socket.gethostname()}|{path}"
    return process


def stop(process: subprocess.Popen | None) -> None:
    os.environ.pop(ADDRESS_ENV, None)
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def _address() -> str | None:
    host, _, path = os.environ.get(ADDRESS_ENV, "").partition("|")
    return path if path and host == socket.gethostname() else None


def hand_over(backend: str | None) -> int | None:
    """Run this job's script (sys.argv[0]) in a fork of the warm interpreter and return its
    exit status; None where there is none or it declines (the job then runs here).
    `backend`: the Keras backend the job needs, None for a job without Keras."""
    path = _address()
    if path is None:
        return None
    request = {
        "script": os.path.abspath(sys.argv[0]),
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "executable": sys.executable,
        "backend": backend,
        "origin": jobs.PHASES.origin,
    }
    channel = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        channel.connect(path)
        socket.send_fds(channel, [json.dumps(request).encode()], [0, 1, 2])
        if not json.loads(channel.recv(MESSAGE_BYTES)).get("accepted"):
            return None
    except (OSError, ValueError):  # not listening (yet, or any more): a process of its own
        channel.close()
        return None
    reply = channel.recv(MESSAGE_BYTES)
    if not reply:
        print("medtransfer: the warm interpreter ended before this job did", file=sys.stderr)
        return 1
    return int(json.loads(reply)["status"])


def preload(backend: str) -> None:
    from . import runtime

    runtime.import_keras(backend)
    for name in PRELOAD:
        importlib.import_module(name)


class Server:
    """The warm process: one thread, a selector over the listening socket, each running
    job's fork (a pidfd) and the job's own process (its end of the connection)."""

    def __init__(self, path: str, backend: str, parent: int) -> None:
        self.backend, self.parent = backend, parent
        self.selector = selectors.DefaultSelector()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        staging = f"{path}.{os.getpid()}"
        self.listener.bind(staging)
        self.listener.listen(64)
        os.replace(staging, path)  # listening before any job can see it
        self.path = path
        self.selector.register(self.listener, selectors.EVENT_READ, self._accept)
        self.forks: dict[int, tuple[socket.socket, int]] = {}  # pid -> (connection, pidfd)

    def serve(self) -> None:
        try:
            while os.getppid() == self.parent:  # Snakemake gone (killed): so is this
                for key, _ in self.selector.select(timeout=1.0):
                    key.data(key.fileobj)
        finally:
            for pid in list(self.forks):
                self._end(pid)
            os.unlink(self.path)

    def _accept(self, listener: socket.socket) -> None:
        connection, _ = listener.accept()
        connection.settimeout(10)
        fds: list[int] = []
        try:
            message, fds, _, _ = socket.recv_fds(connection, MESSAGE_BYTES, 3)
            request = json.loads(message)
            accepted = len(fds) == 3 and request["executable"] == sys.executable
            accepted = accepted and request["backend"] in (None, self.backend)
        except (OSError, ValueError, KeyError):  # not a job's request
            accepted = False
        if not accepted:
            for fd in fds:
                os.close(fd)
            with contextlib.suppress(OSError):
                connection.send(json.dumps({"accepted": False}).encode())
            connection.close()
            return
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            self._close_all()
            run_job(request, fds)  # never returns
        for fd in fds:
            os.close(fd)
        pidfd = os.pidfd_open(pid)
        self.forks[pid] = (connection, pidfd)
        self.selector.register(pidfd, selectors.EVENT_READ, lambda _, pid=pid: self._ended(pid))
        self.selector.register(connection, selectors.EVENT_READ, lambda _, p=pid: self._end(p))
        connection.send(json.dumps({"accepted": True, "pid": pid}).encode())

    def _ended(self, pid: int) -> None:
        connection, _ = self.forks[pid]
        status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        status = status if status >= 0 else 128 - status  # killed by a signal: as a shell says
        with contextlib.suppress(OSError):  # the job's own process is gone
            connection.send(json.dumps({"status": status}).encode())
        self._forget(pid)

    def _end(self, pid: int) -> None:
        """The job's own process is gone (Snakemake stopped it): its fork goes too."""
        if pid not in self.forks:  # its fork ended in the same round
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        self._forget(pid)

    def _forget(self, pid: int) -> None:
        connection, pidfd = self.forks.pop(pid)
        self.selector.unregister(pidfd)
        self.selector.unregister(connection)
        os.close(pidfd)
        connection.close()

    def _close_all(self) -> None:
        """In a fork: none of the warm process's sockets stay open in a job."""
        for connection, pidfd in self.forks.values():
            connection.close()
            os.close(pidfd)
        self.listener.close()
        self.selector.close()


def _die_with_parent(sig: signal.Signals) -> None:
    """Receive `sig` when the parent process ends, however it ends (Linux's prctl)."""
    import ctypes

    parent = os.getppid()
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, sig)
    if os.getppid() != parent:  # it ended before the call
        os.kill(os.getpid(), sig)


def _fresh_process_state(request: dict[str, Any], fds: list[int]) -> None:
    """What a job's own process would have had: its streams, folder, environment, thread
    counts and global random state."""
    _die_with_parent(signal.SIGKILL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ.pop(ADDRESS_ENV, None)
    os.environ[jobs.IN_WARM_JOB_ENV] = str(os.getppid())
    jobs.PHASES = jobs.Phases(request["origin"])  # the job's times count from its own process
    threads = request["env"].get("OPENBLAS_NUM_THREADS")
    if threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(int(threads))
    import numpy as np

    random.seed()
    np.random.seed()
    sys.argv = [request["script"]]


def run_job(request: dict[str, Any], fds: list[int]) -> None:
    status = 1
    try:
        _fresh_process_state(request, fds)
        runpy.run_path(request["script"], run_name="__main__")
        status = 0
    except SystemExit as end:
        status = end.code if isinstance(end.code, int) else (0 if end.code is None else 1)
        if not isinstance(end.code, int | None):
            print(end.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def main(argv: list[str]) -> None:
    path, backend, parent = argv
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    _die_with_parent(signal.SIGTERM)  # Snakemake gone, however: this process and its forks
    preload(backend)
    status = 0
    try:
        Server(path, backend, int(parent)).serve()
    except SystemExit:  # SIGTERM: the run ended
        pass
    except BaseException:
        traceback.print_exc()
        status = 1
    sys.stderr.flush()
    os._exit(status)  # not tearing TensorFlow down: Snakemake waits for this process to end
