"""The grid a config asks for, as files: its planned runs, the path of every file a job
writes (built and parsed here, nowhere else), each job's inputs, and what the default
target pulls in.

Pure Python, no Snakemake and no TensorFlow: workflow/rules/common.smk adapts it to
Snakemake's wildcards and checkpoints, and tests call it directly.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .architectures import DEFAULT_ARCHITECTURE, architecture
from .config import (
    GRID_KEYS,
    IMAGENET,
    NO_SOURCE,
    Method,
    architecture_grids,
    parse_method,
    pretrained_sources,
    same_data,
    trained_sources,
)
from .download import lands_as_folder
from .imagenet import weights_file

# Paths: each names its wildcards. Data, splits and the leakage audit belong to the tasks;
# everything a network computes lies under its architecture, results/{arch}/.
PREPARED = "results/prepared/{dataset}/{size}px/"
TASK_META = "results/tasks/{task}/{size}px/meta.json"
SPLIT = "results/splits/{task}/seed{seed}.json"
SPLIT_FRACTION = "results/splits/{task}/seed{seed}_frac{fraction}.json"
# The leakage audit: duplicates within a task, and source images that reappear in a target.
AUDIT = "results/audit/{task}/"
OVERLAP = "results/audit/overlap/{trained}/{target}"
ARCH = "results/{arch}/"
SOURCE_DIR = "results/{arch}/models/{source}/"
SOURCE_MODEL = "results/{arch}/models/{source}/model.keras"
# Keras' published ImageNet files are legacy HDF5: the name must end in .h5, not .weights.h5
# (which Keras 3 reads as its own format); a package's file keeps its own suffix (.pth).
IMAGENET_WEIGHTS = "results/{arch}/models/imagenet/weights_{size}px.{ext}"
FEATURES = "results/{arch}/features/{target}/{source}.npy"
# the same pass's pooled stage outputs (k-NN probe) and source softmax (LEEP, NCE)
FEATURE_OUTPUTS = "results/{arch}/features/{target}/{source}_outputs.npz"
FINETUNED = "results/{arch}/finetune/{target}/{source}/{variant}/seed{seed}/"
RUN = "results/{arch}/runs/{target}/{source}/{method}/seed{seed}.json"
# Transferability: every estimator per seed from the cached features; the k-NN probe of the
# frozen stages; the adaptive grid's choice of sources to fine-tune (a checkpoint).
ESTIMATES = "results/{arch}/transferability/{target}/{source}.csv"
KNN = "results/{arch}/probes/{target}/{source}_knn.csv"
CHOSEN = "results/{arch}/transferability/{target}/chosen_seed{seed}.json"
# The learning-curve axis: the same stages on a subsampled training split.
FINETUNED_FRACTION = (
    "results/{arch}/finetune/{target}/{source}/{variant}/seed{seed}_frac{fraction}/"
)
RUN_FRACTION = "results/{arch}/runs/{target}/{source}/{method}/seed{seed}_frac{fraction}.json"
LOG = "logs/{rule}/{name}.log"
BENCHMARK = "results/benchmarks/{rule}/{name}.tsv"

ANALYSIS = [
    "analysis/similarity.csv",
    "analysis/similarity.png",
    "analysis/data_per_class.csv",
    "analysis/data_per_class.png",
]
TRANSFERABILITY = ["estimates.csv", "tau.csv", "tau.md", "estimates.png"]
# The first architecture's Table II and Figure 3 are also the grid's, at results/ (with one
# architecture, as every config before architectures existed, they are the same files).
PRIMARY = ["table2.csv", "table2.md", "table2.tex", "figure3.png"]
CROSS_ARCHITECTURE = [f"results/architectures.{ext}" for ext in ("csv", "md", "tex", "png")]
RESOLUTION = [f"results/resolution.{ext}" for ext in ("csv", "md", "png")]
TABLE_REPORT_KEYS = ("fe_method", "ft_method", "groups", "alpha", "correction")


def logfile(rule: str, name: str) -> str:
    return LOG.format(rule=rule, name=name)


def benchfile(rule: str, name: str) -> str:
    return BENCHMARK.format(rule=rule, name=name)


def parse_path(pattern: str, path: str) -> dict[str, str]:
    """The wildcards of a path built from `pattern` (the inverse of pattern.format); the
    path may lie below another folder. A path of another shape is an error naming both."""
    pieces = re.split(r"\{(\w+)\}", pattern)
    regex = "".join(
        re.escape(piece) if i % 2 == 0 else f"(?P<{piece}>[^/]+?)" for i, piece in enumerate(pieces)
    )
    found = re.search(f"(?:^|/){regex}$", str(path))
    if found is None:
        raise ValueError(f"{path} is not a path of the form {pattern}")
    return found.groupdict()


@dataclass(frozen=True)
class PlannedRun:
    """One cell of the grid on one seed: what a `score` job will write as a run record."""

    target: str
    source: str
    method: Method
    seed: int
    arch: str = DEFAULT_ARCHITECTURE

    def _names(self) -> dict[str, Any]:
        return {"arch": self.arch, "target": self.target, "source": self.source,
                "seed": self.seed}  # fmt: skip

    def path(self, fraction: str | None = None) -> str:
        pattern = RUN if fraction is None else RUN_FRACTION
        return pattern.format(**self._names(), method=self.method.name, fraction=fraction)

    def finetune_dir(self) -> str:
        return FINETUNED.format(**self._names(), variant=self.method.variant)


def grid_runs(
    config: dict[str, Any],
    sources: list[str] | None = None,
    arch: str = DEFAULT_ARCHITECTURE,
) -> list[PlannedRun]:
    """Every (target, source, method, seed) the config asks for on one architecture.

    Pixel baselines use no network, so they run once per target under source 'none'.
    Runs whose source and target share a dataset are left out (the paper's N.A.).
    """
    grid = architecture_grids(config).get(arch) or {k: config[k] for k in GRID_KEYS}
    runs = []
    for target in grid["targets"]:
        for source in grid["sources"] if sources is None else sources:
            if source not in grid["sources"] or same_data(config, source, target):
                continue
            for name in grid["methods"]:
                method = parse_method(name)
                if method.kind == "pixels" and source != NO_SOURCE:
                    continue
                runs.extend(
                    PlannedRun(target, source, method, seed, arch) for seed in grid["seeds"]
                )
    return runs


def fraction_label(fraction: float) -> str:
    """The fraction as it appears in paths: 0.25 -> '0.25'."""
    return f"{fraction:g}"


def learning_curve_runs(
    config: dict[str, Any], runs: list[PlannedRun]
) -> list[tuple[PlannedRun, str]]:
    """(run, fraction) pairs of the learning-curve axis: the grid's runs restricted to the
    configured targets, sources and methods, at each fraction below 1."""
    settings = config.get("learning_curve", {})
    chosen = []
    for run in runs:
        if any(
            settings.get(key) and value not in settings[key]
            for key, value in (
                ("targets", run.target),
                ("sources", run.source),
                ("methods", run.method.name),
            )
        ):
            continue
        chosen += [(run, fraction_label(f)) for f in settings.get("fractions", [])]
    return chosen


def adaptive_settings(config: dict[str, Any]) -> dict[str, Any]:
    """{} (the default): the whole grid; otherwise its estimator and top_k, defaults filled."""
    return config["adaptive"] and {"estimator": "logme", "top_k": 2, **config["adaptive"]}


def describes_only(argv: list[str]) -> bool:
    """Whether a Snakemake command line asks for the HTML report of what has been built
    (`--report [FILE]`, `--report=FILE`) rather than a run: the default target is then the
    finished outputs only, so that a partial grid's report shows what exists. With
    `--report-after-run` the grid runs first and is reported after: every output is wanted."""
    asks = any(arg == "--report" or arg.startswith("--report=") for arg in argv)
    return asks and "--report-after-run" not in argv


class Grid:
    """A validated config's grid: the planned runs of each architecture (`sources_of`: the
    sources each architecture runs, ImageNet left out where its weights are missing and may
    be skipped) and every job's files. `chosen(arch, target, seed)` reads the adaptive
    grid's choice of sources once it is made (Snakemake's checkpoint)."""

    def __init__(
        self,
        config: dict[str, Any],
        sources_of: dict[str, list[str]],
        data_root: str,
        chosen: Callable[[str, str, int], list[str]] | None = None,
    ):
        self.config = config
        self.data_root = data_root
        self.arch_grids = architecture_grids(config)
        self.archs = list(self.arch_grids)
        self.sources_of = sources_of
        self.chosen = chosen
        self.adaptive = adaptive_settings(config)
        self.trained = trained_sources(config)
        self.pretrained = pretrained_sources(config)
        self.sources = [s for s in config["sources"] if any(s in v for v in sources_of.values())]
        self.runs = [r for arch in self.archs for r in grid_runs(config, sources_of[arch], arch)]
        self.curve_runs = learning_curve_runs(config, self.runs)
        self.audited_tasks = sorted(
            {*config["targets"], *(s for s in self.sources if s in self.trained)}
        )
        self.downloads = self._downloads()

    # -- data -------------------------------------------------------------------------

    def size_of(self, arch: str) -> int:
        """The image size an architecture's networks see: the grid's, or its entry's own.
        (Audit and splits are of the images, not of a size: they use the grid's.)"""
        return self.arch_grids[arch]["image_size"]

    def dataset_of(self, task: str) -> str:
        return self.config["tasks"][task]["dataset"]

    def tasks_of(self, dataset: str) -> dict[str, Any]:
        """The tasks on a dataset: prepare decodes the images of all of them at once."""
        return {n: t for n, t in self.config["tasks"].items() if t["dataset"] == dataset}

    def task_data(self, task: str, size: int) -> dict[str, str]:
        """A task's images (its dataset's decoded array) and metadata (its rows of it)."""
        return {
            "images": PREPARED.format(dataset=self.dataset_of(task), size=size) + "images.npy",
            "meta": TASK_META.format(task=task, size=size),
        }

    def arch_task_data(self, arch: str, task: str) -> dict[str, str]:
        return self.task_data(task, self.size_of(arch))

    def dataset_index(self, task: str, size: int) -> str:
        return PREPARED.format(dataset=self.dataset_of(task), size=size) + "index.json"

    def fingerprints(self, task: str) -> str:
        size = self.config["image_size"]
        return PREPARED.format(dataset=self.dataset_of(task), size=size) + "fingerprints.npz"

    def _downloads(self) -> dict[str, tuple[str, Any]]:
        """{path under data_root: (dataset or pretrained source, download entry)} of the
        datasets and pretrained weights the grid reads that say where their files come
        from."""
        config = self.config
        used = {self.dataset_of(t) for t in [*config["targets"], *self.trained]}
        datasets = {
            spec["path"]: (name, spec["download"])
            for name, spec in config["datasets"].items()
            if "download" in spec and name in used
        }
        entries = {name: config["pretrained"][name] for name in self.pretrained}
        weights = {
            entry["weights"]: (name, entry["download"])
            for name, entry in entries.items()
            if "download" in entry and not os.path.isabs(entry["weights"])
        }
        return {**datasets, **weights}

    def download_folders(self) -> list[str]:
        """Downloads that land as a folder (a dataset's manual or unpacked download); a
        weights file stays a file."""
        weights = {self.config["pretrained"][n]["weights"] for n in self.pretrained}
        return [
            path
            for path, (_, entry) in self.downloads.items()
            if lands_as_folder(entry) and path not in weights
        ]

    def download_files(self) -> list[str]:
        folders = self.download_folders()
        return [path for path in self.downloads if path not in folders]

    def downloaded(self, dataset: str) -> list[str]:
        """A dataset's own files where a download rule provides them (prepare waits)."""
        path = self.config["datasets"][dataset]["path"]
        return [f"{self.data_root}/{path}"] if path in self.downloads else []

    def pretrained_weights(self, source: str) -> str:
        """A pretrained source's weights file: relative to data_root unless absolute."""
        weights = self.config["pretrained"][source]["weights"]
        return weights if os.path.isabs(weights) else f"{self.data_root}/{weights}"

    def split(self, target: str, seed: int | str, fraction: str | None = None) -> str:
        """The run's split file: the seed's split, or its subsample on the learning curve."""
        if fraction is None:
            return SPLIT.format(task=target, seed=seed)
        return SPLIT_FRACTION.format(task=target, seed=seed, fraction=fraction)

    # -- networks ---------------------------------------------------------------------

    def source_model(self, arch: str, source: str) -> list[str] | str:
        """What extract and finetune load as the source: nothing for 'none' (random init)."""
        if source == NO_SOURCE:
            return []
        if source == IMAGENET:
            size = self.size_of(arch)
            ext = weights_file(size, arch).name.rsplit(".", 1)[1]
            return IMAGENET_WEIGHTS.format(arch=arch, size=size, ext=ext)
        return SOURCE_MODEL.format(arch=arch, source=source)

    def network_params(self, arch: str) -> dict[str, Any]:
        """What every Keras job reads to build a network and run it: the architecture, its
        width (VGG16 only), the feature layer, the Keras backend, the accelerator switches.
        """
        config = self.config
        return {
            "arch": arch,
            "width": config["width"] if architecture(arch).has_width else 1.0,
            "feature_layer": config["feature_layer"],
            "keras_backend": config["keras_backend"],
            **config["accelerator"],
        }

    def training_params(self, stage: str, arch: str) -> dict[str, Any]:
        """The training settings of one stage plus what every Keras job reads."""
        return {**self.config[stage], **self.network_params(arch)}

    # -- runs -------------------------------------------------------------------------

    def score_inputs(
        self,
        arch: str,
        target: str,
        source: str,
        method_name: str,
        seed: str,
        fraction: str | None = None,
    ) -> dict[str, str]:
        """What a score job reads: the target's data and split, and the features (frozen
        or fine-tuned) its method classifies; the overlap audit where the source network
        was trained here."""
        method = parse_method(method_name)
        inputs = {**self.arch_task_data(arch, target), "split": self.split(target, seed, fraction)}
        if method.kind == "fe":
            inputs["features"] = FEATURES.format(arch=arch, target=target, source=source)
            inputs["features_info"] = inputs["features"].replace(".npy", ".json")
        elif method.kind == "ft":
            pattern = FINETUNED if fraction is None else FINETUNED_FRACTION
            run_dir = pattern.format(
                arch=arch,
                target=target,
                source=source,
                variant=method.variant,
                seed=seed,
                fraction=fraction,
            )
            inputs["features"] = f"{run_dir}features.npy"
            inputs["network_scores"] = f"{run_dir}softmax.npy"
            inputs["training"] = f"{run_dir}training.json"
        if source in self.trained:
            inputs["overlap"] = OVERLAP.format(trained=source, target=target) + ".json"
        return inputs

    def runs_of(self, arch: str, target: str | None = None) -> list[PlannedRun]:
        """The runs of an architecture (and target): all of its grid, or, with `adaptive`,
        no fine-tuning of the sources the estimates left out (known once `chosen` can
        answer: only for input functions)."""
        runs = [r for r in self.runs if r.arch == arch and target in (None, r.target)]
        if not self.adaptive:
            return runs
        candidates = {t: self.candidate_sources(arch, t) for t in {r.target for r in runs}}
        chosen: dict[tuple[str, int], list[str]] = {}
        kept = []
        for r in runs:
            if r.method.kind == "ft" and r.source in candidates[r.target]:
                key = (r.target, r.seed)
                if key not in chosen:
                    chosen[key] = self.chosen(arch, r.target, r.seed)
                if r.source not in chosen[key]:
                    continue
            kept.append(r)
        return kept

    def run_files(self, arch: str, target: str | None = None) -> list[str]:
        return [r.path() for r in self.runs_of(arch, target)]

    def all_run_files(self) -> list[str]:
        return [path for arch in self.archs for path in self.run_files(arch)]

    def target_seeds(self, arch: str, target: str) -> list[int]:
        """The seeds of an architecture's runs on a target."""
        return sorted({r.seed for r in self.runs if r.arch == arch and r.target == target})

    def targets(self, arch: str) -> list[str]:
        return self.arch_grids[arch]["targets"]

    def finetune_dirs(self, arch: str, target: str) -> list[str]:
        return sorted(
            {r.finetune_dir() for r in self.runs_of(arch, target) if r.method.kind == "ft"}
        )

    def curve_files(self, arch: str) -> list[str]:
        """Runs on the learning-curve axis plus the full-data runs they are compared with
        (with `adaptive`, of the sources it fine-tunes)."""
        kept = set(self.runs_of(arch))
        chosen = [(r, f) for r, f in self.curve_runs if r.arch == arch and r in kept]
        return [r.path(f) for r, f in chosen] + sorted({r.path() for r, _ in chosen})

    # -- the leakage audit ------------------------------------------------------------

    def overlap_pairs(self) -> list[tuple[str, str]]:
        """(trained source, target) of every run whose source network saw a task's images."""
        return sorted({(r.source, r.target) for r in self.runs if r.source in self.trained})

    def audit_report_inputs(self) -> dict[str, list[str]]:
        pretrain_seed = self.config["pretrain_seed"]
        return {
            "tasks": [f"{AUDIT.format(task=t)}summary.json" for t in self.audited_tasks],
            "overlaps": [
                OVERLAP.format(trained=s, target=t) + ".json" for s, t in self.overlap_pairs()
            ],
            "splits": sorted(
                {SPLIT.format(task=r.target, seed=r.seed) for r in self.runs}
                | {
                    SPLIT.format(task=s, seed=pretrain_seed)
                    for s in self.trained
                    if s in self.sources
                }
            ),
        }

    # -- transferability --------------------------------------------------------------

    def estimated_sources(self, arch: str, target: str) -> list[str]:
        """The sources whose transferability to a target is estimated (not the target's
        own data: Table II's N.A.)."""
        return [s for s in self.sources_of[arch] if not same_data(self.config, s, target)]

    def candidate_sources(self, arch: str, target: str) -> list[str]:
        """The sources the adaptive grid chooses among: every transfer source (No transfer
        and the FE runs are always run)."""
        return [s for s in self.estimated_sources(arch, target) if s != NO_SOURCE]

    def estimate_inputs(self, arch: str, target: str, source: str) -> dict[str, Any]:
        names = {"arch": arch, "target": target, "source": source}
        return {
            "features": FEATURES.format(**names),
            "outputs": FEATURE_OUTPUTS.format(**names),
            "meta": TASK_META.format(task=target, size=self.size_of(arch)),
            "splits": [
                SPLIT.format(task=target, seed=seed) for seed in self.arch_grids[arch]["seeds"]
            ],
        }

    def estimates(self, arch: str, target: str | None = None) -> list[str]:
        return [
            ESTIMATES.format(arch=arch, target=t, source=s)
            for t in ([target] if target else self.targets(arch))
            for s in self.estimated_sources(arch, t)
        ]

    def knn_files(self, arch: str, target: str) -> list[str]:
        return [
            KNN.format(arch=arch, target=target, source=s)
            for s in self.estimated_sources(arch, target)
        ]

    def chosen_files(self, arch: str) -> list[str]:
        """The adaptive grid's choices of every target with sources to choose among."""
        return [
            CHOSEN.format(arch=arch, target=t, seed=seed)
            for t in self.targets(arch)
            if self.candidate_sources(arch, t)
            for seed in self.target_seeds(arch, t)
        ]

    def finetune_benchmarks(self, arch: str) -> dict[str, list[str]]:
        """{target/source/seed: the benchmark files of the fine-tuning jobs the full grid
        would run for that source and seed}: the compute an adaptive choice saves."""
        jobs: dict[str, set[str]] = {}
        for r in self.runs:
            if r.arch == arch and r.method.kind == "ft":
                name = f"{r.target}_{r.source}_{r.method.variant}_seed{r.seed}"
                jobs.setdefault(f"{r.target}/{r.source}/{r.seed}", set()).add(
                    benchfile("finetune", f"{arch}/{name}")
                )
        return {key: sorted(paths) for key, paths in jobs.items()}

    # -- reports ----------------------------------------------------------------------

    def similarity_pairs(self, arch: str) -> list[tuple[str, ...]]:
        """(source, target, source features, source info, target features, target meta) of
        every trained source and target of other data."""
        return [
            (
                source,
                target,
                SOURCE_DIR.format(arch=arch, source=source) + "features.npy",
                SOURCE_DIR.format(arch=arch, source=source) + "source.json",
                FEATURES.format(arch=arch, target=target, source=source),
                TASK_META.format(task=target, size=self.size_of(arch)),
            )
            for source in self.sources_of[arch]
            if source in self.trained
            for target in self.targets(arch)
            if not same_data(self.config, source, target)
        ]

    def source_infos(self, arch: str) -> dict[str, str | None]:
        """source.json of each trained source; None for ImageNet (its size is known). A
        pretrained source's training data are not known here: it has none."""
        return {
            source: (
                None
                if source == IMAGENET
                else SOURCE_DIR.format(arch=arch, source=source) + "source.json"
            )
            for source in self.sources_of[arch]
            if source != NO_SOURCE and source not in self.pretrained
        }

    def filter_sources(self, arch: str) -> list[str]:
        """Every source network; the untrained one ('none') is the structural null."""
        return [s for s in self.sources_of[arch] if s != NO_SOURCE]

    def filter_layers(self, arch: str) -> list[str]:
        spec = architecture(arch)
        return (
            self.config["report"]["filter_layers"]
            if spec.configurable_filters
            else spec.filter_layers
        )

    def filter_grids(self, arch: str) -> list[str]:
        if not (self.config["report"]["filters"] and self.filter_sources(arch)):
            return []
        return [
            *(
                f"results/{arch}/filters/{source}/kernels.png"
                for source in [*self.filter_sources(arch), NO_SOURCE]
            ),
            f"results/{arch}/filters/structural.csv",
        ]

    def table_settings(self, targets: list[str]) -> dict[str, Any]:
        """What Table II and Figure 3 read: their targets, each task's dataset (a source of
        the target's own data is N.A.) and the report keys they use. A rule param, so that
        changing any of it rebuilds them, and nothing else does."""
        config = self.config
        return {
            "targets": list(targets),
            "tasks": {t: {"dataset": spec["dataset"]} for t, spec in config["tasks"].items()},
            "report": {k: config["report"][k] for k in TABLE_REPORT_KEYS},
        }

    def tuned_targets(self, arch: str) -> list[str]:
        """The targets with fine-tuned runs (the CKA probes need them)."""
        return [
            t
            for t in self.targets(arch)
            if any(r.arch == arch and r.target == t and r.method.kind == "ft" for r in self.runs)
        ]

    def transferability_outputs(self, arch: str) -> list[str]:
        """The estimates' report, the adaptive report, and the probes of every target with
        fine-tuned runs."""
        prefix = ARCH.format(arch=arch)
        return [
            *(f"{prefix}transferability/{name}" for name in TRANSFERABILITY),
            *([f"{prefix}transferability/adaptive.md"] if self.adaptive else []),
            *(f"{prefix}probes/{t}/cka.png" for t in self.tuned_targets(arch)),
        ]

    def arch_outputs(self, arch: str) -> list[str]:
        """Everything the grid reports of one architecture, under results/{arch}/."""
        prefix = ARCH.format(arch=arch)
        has_curves = any(r.arch == arch for r, _ in self.curve_runs)
        return [
            *([f"{prefix}analysis/learning_curves.png"] if has_curves else []),
            *([prefix + path for path in ANALYSIS] if self.similarity_pairs(arch) else []),
            # with `adaptive` the runs are known after the checkpoint: the tables pull them in
            *([] if self.adaptive else self.run_files(arch)),
            *self.transferability_outputs(arch),
            *(f"{prefix}{t}/roc.png" for t in self.targets(arch)),
            *(f"{prefix}{name}" for name in PRIMARY),
            *self.filter_grids(arch),
        ]

    def networks(self) -> dict[str, dict[str, Any]]:
        """{grid network: its architecture and image size} (vgg16_64px: vgg16 at 64 px)."""
        return {
            key: {"architecture": g["architecture"], "image_size": g["image_size"]}
            for key, g in self.arch_grids.items()
        }

    def has_sizes(self) -> bool:
        """Whether an architecture runs at two or more image sizes (the resolution table)."""
        names = [g["architecture"] for g in self.arch_grids.values()]
        return len(set(names)) < len(names)

    def final_outputs(self) -> list[str]:
        """What the default target builds: the audit, the grid's Table II and Figure 3, the
        cross-architecture comparison where there are several networks, the resolution
        comparison where one runs at several sizes, each network's reports."""
        return [
            "results/audit/summary.md",
            *(f"results/{name}" for name in PRIMARY),
            *(CROSS_ARCHITECTURE if len(self.archs) > 1 else []),
            *(RESOLUTION if self.has_sizes() else []),
            *(path for arch in self.archs for path in self.arch_outputs(arch)),
        ]
