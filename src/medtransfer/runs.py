"""The run record: what `score` writes for one (target, source, method, seed), and the one
reader that every report (Table II, statistics, analyses, per-target figures) takes runs from.

The No-transfer baseline is defined here once: the runs of source `none` with the table's FT
method (a network trained from scratch on the target), per target.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .architectures import ARCHITECTURES, DEFAULT_ARCHITECTURE, base_name
from .config import NO_SOURCE
from .io import read_json, write_json


class RunFileError(ValueError):
    """A run file that cannot be read as a run; the message names the file and the key."""


@dataclass(frozen=True)
class RunRecord:
    """One scored run. `provenance` holds what reports do not read (versions, inputs,
    wall times, config hash, training details)."""

    target: str
    source: str
    method: str
    seed: int
    classes: list[str]
    auc_macro: float | None
    auc_per_class: dict[str, float | None]
    accuracy: float
    kappa: float | None
    kappa_quadratic: float | None
    f1_per_class: dict[str, float]
    f1_micro: float
    f1_macro: float
    confusion_matrix: list[list[int]]
    sizes: dict[str, int]
    test_labels: list[int]
    test_scores: list[list[float]]
    train_fraction: float = 1.0
    architecture: str = DEFAULT_ARCHITECTURE  # records before architectures existed: VGG16
    leakage: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    file: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.target, self.source, self.method)

    @property
    def label(self) -> str:
        return f"{self.source} / {self.method}"

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {**{k: v for k, v in data.items() if k not in ("provenance", "file")},
                **self.provenance}  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any], file: str = "") -> RunRecord:
        names = {f.name for f in dataclasses.fields(cls)} - {"provenance", "file"}
        required = {
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        missing = sorted(required - set(data))
        if missing:
            raise RunFileError(
                f"{file or 'run'}: not a run file of this version: no {', '.join(missing)} "
                "(score the run again)"
            )
        known = {k: v for k, v in data.items() if k in names}
        provenance = {k: v for k, v in data.items() if k not in names}
        return cls(**known, provenance=provenance, file=str(file))


def recorded_scores(scores: np.ndarray) -> list[list[float]]:
    """Test scores as the record keeps them: every float64 digit (JSON round-trips them), so
    that the record's AUC is recomputed exactly from its own scores. Rounded (to 6 decimals,
    even to 10 significant digits) an SVM's margins on features of tiny scale became ties
    and the recomputed AUC was 0.5 where the recorded one was 0.59: see `nearly_tied`."""
    return np.asarray(scores, dtype=np.float64).tolist()


def nearly_tied(scores: np.ndarray, relative: float = 1e-9) -> bool:
    """Whether some class's test scores differ by less than `relative` of their size: the
    classifier then ranks the test images by floating-point noise (a C=1 SVM on the raw
    features of a network whose features are tiny learns w near 0)."""
    scores = np.asarray(scores, dtype=np.float64)
    spread = np.ptp(scores, axis=0)
    size = np.maximum(np.abs(scores).max(axis=0), 1e-300)
    return bool((spread <= relative * size).any())


def write_run(path: Any, run: RunRecord) -> None:
    write_json(path, run.to_json())


def read_runs(paths: list[Any]) -> list[RunRecord]:
    """The runs of these files, each checked: a file that is not JSON, lies at another run's
    place or whose AUC its own test scores do not give is refused by name."""
    return [checked(read_run_file(path), path) for path in paths]


def read_run_file(path: Any) -> RunRecord:
    try:
        data = read_json(path)
    except (ValueError, OSError) as error:  # JSONDecodeError is a ValueError
        raise RunFileError(f"{path}: cannot be read as a run record ({error})") from error
    return RunRecord.from_json(data, str(path))


AUC_TOLERANCE = 5e-4
RUN_PATH = re.compile(
    r"(?:^|/)(?P<arch>[^/]+)/runs/(?P<target>[^/]+)/(?P<source>[^/]+)/(?P<method>[^/]+)/"
    r"seed(?P<seed>\d+)(?:_frac[^/]*)?\.json$"
)


def checked(run: RunRecord, path: Any) -> RunRecord:
    """A run whose record agrees with its path (results/{arch}/runs/{target}/{source}/
    {method}/seed{seed}.json) and whose AUC its own test labels and scores give."""
    place = RUN_PATH.search(Path(path).as_posix())
    if place:
        said = {"arch": run.architecture, "target": run.target, "source": run.source,
                "method": run.method, "seed": str(run.seed)}  # fmt: skip
        if base_name(place["arch"]) not in ARCHITECTURES:  # a copy outside results/
            del said["arch"]
        wrong = {k: v for k, v in said.items() if place[k] != v}
        if wrong:
            raise RunFileError(
                f"{path}: the record says {', '.join(f'{k} {v}' for k, v in wrong.items())} "
                f"but lies at the place of {', '.join(f'{k} {place[k]}' for k in wrong)} "
                "(a copied or moved run file; score the run again)"
            )
    if run.auc_macro is not None and run.test_scores:
        from .metrics import macro_auc, one_vs_rest_auc

        recomputed = macro_auc(
            one_vs_rest_auc(np.asarray(run.test_labels), np.asarray(run.test_scores))
        )
        # the record keeps scores to 6 decimals, whose ties move an AUC by ~1e-5: a
        # difference a table printed to 3 decimals could show is an edit
        if recomputed is not None and abs(recomputed - run.auc_macro) > AUC_TOLERANCE:
            raise RunFileError(
                f"{path}: auc_macro {run.auc_macro:.6f} is not what its own test scores give "
                f"({recomputed:.6f}): an edited or damaged run file; score the run again"
            )
    return run


def group_runs(runs: list[RunRecord]) -> dict[tuple[str, str, str], list[RunRecord]]:
    """Runs by (target, source, method), each group ordered by seed."""
    grouped: dict[tuple[str, str, str], list[RunRecord]] = {}
    for run in sorted(runs, key=lambda r: (r.key, r.seed)):
        grouped.setdefault(run.key, []).append(run)
    return grouped


def runs_frame(runs: list[RunRecord]) -> pd.DataFrame:
    """A row per run with what tables and curves average."""
    return pd.DataFrame(
        [
            {
                "architecture": r.architecture,
                "target": r.target,
                "source": r.source,
                "method": r.method,
                "seed": r.seed,
                "auc": r.auc_macro,
                "accuracy": r.accuracy,
                "f1_macro": r.f1_macro,
                "fraction": r.train_fraction,
                "n_train": r.sizes.get("train"),
                # False where a fitted classifier stopped before converging, or where its
                # test scores nearly tie (its AUC then ranks floating-point noise)
                "converged": r.provenance.get("classifier_converged") is not False
                and not r.provenance.get("scores_nearly_tied", False),
                "file": r.file,
            }
            for r in runs
        ],
        columns=["architecture", "target", "source", "method", "seed", "auc", "accuracy",
                 "f1_macro", "fraction", "n_train", "converged", "file"],
    )  # fmt: skip


def no_transfer_key(target: str, ft_method: str) -> tuple[str, str, str]:
    """The group of a target's No-transfer runs."""
    return (target, NO_SOURCE, ft_method)


def is_no_transfer(source: str, method: str, ft_method: str) -> bool:
    return source == NO_SOURCE and method == ft_method


def no_transfer_means(summary: pd.DataFrame, ft_method: str) -> pd.Series:
    """No transfer's mean AUC per target, from a Table II summary (target, source, method,
    mean)."""
    rows = summary[(summary.source == NO_SOURCE) & (summary.method == ft_method)]
    return rows.set_index("target")["mean"]


def predictions(run: RunRecord) -> np.ndarray:
    return np.asarray(run.test_scores).argmax(axis=1)
