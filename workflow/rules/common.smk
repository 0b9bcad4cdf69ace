# Config validation, wildcard constraints, path patterns and input functions (get_*).

import json
import os
import re
import sys

# The package is imported from this checkout (the Snakefile imported _checkout), also where
# it is not installed (conda envs that hold only its dependencies) or another one is.
from medtransfer import config as mtc
from medtransfer import imagenet
from medtransfer.architectures import architecture
from medtransfer.download import lands_as_folder

ENV = "../../envs/medtransfer.yaml"


# Where the data lie is the machine's business, not the grid's: the config files leave
# data_root out; --config data_root=... or $MEDTRANSFER_DATA_ROOT (set once) say it.
if "data_root" not in config:
    config["data_root"] = os.environ.get(mtc.DATA_ROOT_VARIABLE, "data")
mtc.validate_schema(
    config, os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.yaml")
)
mtc.check_config(config)

SIZE = config["image_size"]

TASKS = list(config["tasks"])
TRAINED_SOURCES = mtc.trained_sources(config)
# Networks pretrained elsewhere (the `pretrained` section) that the grid uses
PRETRAINED = mtc.pretrained_sources(config)
# The networks of the grid, each with the part of the grid it runs (all of it by default).
ARCH_GRIDS = mtc.architecture_grids(config)
ARCHS = list(ARCH_GRIDS)


def size_of(arch):
    """The image size an architecture's networks see: the grid's, or its entry's own.
    (Audit and splits are of the images, not of a size: they use the grid's.)"""
    return ARCH_GRIDS[arch]["image_size"]


def active_sources(arch):
    """An architecture's sources, less ImageNet where its weights are neither cached nor
    downloadable from here and may be skipped."""
    sources = list(ARCH_GRIDS[arch]["sources"])
    settings = config["imagenet"]
    if mtc.IMAGENET not in sources or settings["when_missing"] != "skip":
        return sources
    if (
        imagenet.cached_weights(size_of(arch), settings["weights_dir"], arch)
        is not None
    ):
        return sources
    problem = (
        None
        if architecture(arch).weights_package
        else imagenet.download_problem(size_of(arch), arch)
    )
    if problem is None and not architecture(arch).weights_package:
        logger.info(
            f"{arch} ImageNet weights: not cached; the fetch job downloads them"
        )
        return sources
    why = f"It was not downloaded: {problem}." if problem else ""
    missing = imagenet.missing_message(
        size_of(arch), settings["weights_dir"], arch, why
    )
    logger.warning(
        f"imagenet source left out of the {arch} grid "
        f"(imagenet.when_missing: skip): {missing}"
    )
    sources.remove(mtc.IMAGENET)
    return sources


SOURCES_OF = {arch: active_sources(arch) for arch in ARCHS}
SOURCES = [s for s in config["sources"] if any(s in v for v in SOURCES_OF.values())]
RUNS = [r for arch in ARCHS for r in mtc.grid_runs(config, SOURCES_OF[arch], arch)]
CURVE_RUNS = mtc.learning_curve_runs(config, RUNS)
AUDITED_TASKS = sorted(
    {*config["targets"], *(s for s in SOURCES if s in TRAINED_SOURCES)}
)


def alternatives(names, escape=False):
    names = [re.escape(n) for n in names] if escape else list(names)
    return "|".join(sorted(names, key=len, reverse=True)) or "__none__"


wildcard_constraints:
    dataset=alternatives(config["datasets"]),
    task=alternatives(TASKS),
    target=alternatives(TASKS),
    source=alternatives([*TASKS, *mtc.SPECIAL_SOURCES, *PRETRAINED]),
    trained=alternatives(TRAINED_SOURCES),
    pretrained=alternatives(PRETRAINED),
    arch=alternatives(ARCHS),
    method=r"[a-z0-9]+(-[a-z0-9]+)*",
    variant=r"(all|last|first|firstlast)(-randhead)?",
    seed=r"\d+",
    fraction=r"0\.\d+",
    size=r"\d+",
    ext=r"h5|pth",


# Paths: each names its wildcards; the rule files use these patterns. Data, splits and the
# leakage audit belong to the tasks; everything a network computes lies under its
# architecture, results/{arch}/.
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
# (which Keras 3 reads as its own format).
# the suffix of the architecture's own weights file (.h5 from Keras, .pth from a package)
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
RUN_FRACTION = (
    "results/{arch}/runs/{target}/{source}/{method}/seed{seed}_frac{fraction}.json"
)


def logfile(rule_name, pattern):
    return f"logs/{rule_name}/{pattern}.log"


def benchfile(rule_name, pattern):
    return f"results/benchmarks/{rule_name}/{pattern}.tsv"


def grid_downloads():
    """{path under data_root: (dataset or pretrained source, download entry)} of the
    datasets and pretrained weights the grid reads that say where their files come from.
    """
    used = {
        config["tasks"][t]["dataset"] for t in [*config["targets"], *TRAINED_SOURCES]
    }
    datasets = {
        spec["path"]: (name, spec["download"])
        for name, spec in config["datasets"].items()
        if "download" in spec and name in used
    }
    weights = {
        config["pretrained"][name]["weights"]: (
            name,
            config["pretrained"][name]["download"],
        )
        for name in PRETRAINED
        if "download" in config["pretrained"][name]
        and not os.path.isabs(config["pretrained"][name]["weights"])
    }
    return {**datasets, **weights}


def pretrained_weights(wildcards):
    """A pretrained source's weights file: relative to data_root unless absolute."""
    weights = config["pretrained"][wildcards.pretrained]["weights"]
    return weights if os.path.isabs(weights) else f"{DATA_ROOT}/{weights}"


# One spelling of the folder (relative or absolute, trailing slash, through a link): another
# spelling of the same folder changes no job's params, so nothing reruns.
DATA_ROOT = os.path.realpath(config["data_root"])
DOWNLOADS = grid_downloads()
WEIGHTS_FILES = {config["pretrained"][name]["weights"] for name in PRETRAINED}
# a dataset's manual or unpacked download is a folder; a weights file stays a file
DOWNLOAD_FOLDERS = [
    p
    for p, (_, d) in DOWNLOADS.items()
    if lands_as_folder(d) and p not in WEIGHTS_FILES
]
DOWNLOAD_FILES = [p for p in DOWNLOADS if p not in DOWNLOAD_FOLDERS]
# A folder that is not there stops the plan before any job: otherwise Snakemake would see
# changed params, delete the prepared data and only then fail for lack of images.
mtc.check_data_present(config, DATA_ROOT, TRAINED_SOURCES, PRETRAINED, DOWNLOADS)


def get_downloaded(wildcards):
    """A dataset's own files where a download rule provides them (prepare waits for it)."""
    path = config["datasets"][wildcards.dataset]["path"]
    return [f"{DATA_ROOT}/{path}"] if path in DOWNLOADS else []


def tasks_of(dataset):
    """The config's tasks on a dataset: prepare decodes the images of all of them at once."""
    return {name: t for name, t in config["tasks"].items() if t["dataset"] == dataset}


def task_data(task, size):
    """A task's images (its dataset's decoded array) and metadata (its rows of that array)."""
    dataset = config["tasks"][task]["dataset"]
    return {
        "images": PREPARED.format(dataset=dataset, size=size) + "images.npy",
        "meta": TASK_META.format(task=task, size=size),
    }


def get_source_model(wildcards):
    """What extract and finetune load as the source: nothing for 'none' (random init)."""
    if wildcards.source == mtc.NO_SOURCE:
        return []
    if wildcards.source == mtc.IMAGENET:
        size = size_of(wildcards.arch)
        ext = imagenet.weights_file(size, wildcards.arch).name.rsplit(".", 1)[1]
        return IMAGENET_WEIGHTS.format(arch=wildcards.arch, size=size, ext=ext)
    return SOURCE_MODEL.format(arch=wildcards.arch, source=wildcards.source)


def get_target_data(wildcards):
    return task_data(wildcards.target, size_of(wildcards.arch))


def get_trained_data(wildcards):
    return task_data(wildcards.trained, size_of(wildcards.arch))


def get_dataset_index(wildcards):
    dataset = config["tasks"][wildcards.task]["dataset"]
    return PREPARED.format(dataset=dataset, size=wildcards.size) + "index.json"


def get_task_fingerprints(task):
    dataset = config["tasks"][task]["dataset"]
    return PREPARED.format(dataset=dataset, size=SIZE) + "fingerprints.npz"


def get_split(wildcards):
    """The run's split file: the seed's split, or its subsample on the learning curve."""
    task = wildcards.target
    if "fraction" in wildcards.keys():
        return SPLIT_FRACTION.format(
            task=task, seed=wildcards.seed, fraction=wildcards.fraction
        )
    return SPLIT.format(task=task, seed=wildcards.seed)


def get_score_inputs(wildcards):
    method = mtc.parse_method(wildcards.method)
    inputs = {**get_target_data(wildcards), "split": get_split(wildcards)}
    if method.kind == "fe":
        inputs["features"] = FEATURES.format(
            arch=wildcards.arch, target=wildcards.target, source=wildcards.source
        )
        inputs["features_info"] = inputs["features"].replace(".npy", ".json")
    elif method.kind == "ft":
        pattern = FINETUNED_FRACTION if "fraction" in wildcards.keys() else FINETUNED
        run_dir = pattern.format(variant=method.variant, **wildcards)
        inputs["features"] = f"{run_dir}features.npy"
        inputs["network_scores"] = f"{run_dir}softmax.npy"
        inputs["training"] = f"{run_dir}training.json"
    if wildcards.source in TRAINED_SOURCES:
        inputs["overlap"] = (
            OVERLAP.format(trained=wildcards.source, target=wildcards.target) + ".json"
        )
    return inputs


def overlap_pairs():
    """(trained source, target) of every run whose source network saw images of a task."""
    return sorted(
        {(r.source, r.target) for r in RUNS if r.source in TRAINED_SOURCES},
    )


def get_audit_report_inputs(wildcards):
    return {
        "tasks": expand(f"{AUDIT}summary.json", task=AUDITED_TASKS),
        "overlaps": [
            OVERLAP.format(trained=s, target=t) + ".json" for s, t in overlap_pairs()
        ],
        "splits": sorted(
            {SPLIT.format(task=r.target, seed=r.seed) for r in RUNS}
            | {
                SPLIT.format(task=s, seed=config["pretrain_seed"])
                for s in TRAINED_SOURCES
                if s in SOURCES
            }
        ),
    }


def network_params(arch):
    """What every Keras job reads to build a network and run it: the architecture, its
    width (VGG16 only), the feature layer, the Keras backend and the accelerator switches.
    """
    has_width = architecture(arch).has_width
    return {
        "arch": arch,
        "width": config["width"] if has_width else 1.0,
        "feature_layer": config["feature_layer"],
        "keras_backend": config["keras_backend"],
        **config["accelerator"],
    }


def training_params(stage, arch):
    """The training settings of one stage plus what every Keras job reads."""
    return {**config[stage], **network_params(arch)}


def run_path(run):
    return RUN.format(
        arch=run.arch,
        target=run.target,
        source=run.source,
        method=run.method.name,
        seed=run.seed,
    )


# {} (the default): the whole grid; otherwise its estimator and top_k, defaults filled in
ADAPTIVE = config["adaptive"] and {
    "estimator": "logme",
    "top_k": 2,
    **config["adaptive"],
}


def estimated_sources(arch, target):
    """The sources whose transferability to a target is estimated (not the target's own
    data: Table II's N.A.)."""
    return [s for s in SOURCES_OF[arch] if not mtc.same_data(config, s, target)]


def candidate_sources(arch, target):
    """The sources the adaptive grid chooses among: every transfer source (No transfer and
    the FE runs are always run)."""
    return [s for s in estimated_sources(arch, target) if s != mtc.NO_SOURCE]


def chosen_sources(arch, target, seed):
    """The adaptive grid's top-k sources of a target on one seed, once the checkpoint has
    decided from that seed's estimates."""
    chosen = checkpoints.choose_sources.get(arch=arch, target=target, seed=seed).output[
        0
    ]
    with open(chosen) as handle:
        return json.load(handle)["selected"]


def grid_runs_of(arch, target=None):
    """The runs of an architecture (and target): all of its grid, or, with `adaptive`, no
    fine-tuning of the sources the estimates left out. Only for input functions: the
    adaptive choice is known after the checkpoint."""
    runs = [
        r for r in RUNS if r.arch == arch and (target is None or r.target == target)
    ]
    if not ADAPTIVE:
        return runs
    chosen = {}
    kept = []
    for r in runs:
        if r.method.kind == "ft" and r.source in candidate_sources(arch, r.target):
            key = (r.target, r.seed)
            if key not in chosen:
                chosen[key] = chosen_sources(arch, r.target, r.seed)
            if r.source not in chosen[key]:
                continue
        kept.append(r)
    return kept


def arch_target_seeds(arch, target):
    """The seeds of an architecture's runs on a target."""
    return sorted({r.seed for r in RUNS if r.arch == arch and r.target == target})


def get_run_files(arch, target=None):
    return [run_path(r) for r in grid_runs_of(arch, target)]


def finetune_dirs(arch, target):
    return sorted(
        {
            FINETUNED.format(
                arch=r.arch,
                target=r.target,
                source=r.source,
                variant=r.method.variant,
                seed=r.seed,
            )
            for r in grid_runs_of(arch, target)
            if r.method.kind == "ft"
        }
    )


def get_finetune_histories(wildcards):
    return [f"{d}history.csv" for d in finetune_dirs(wildcards.arch, wildcards.target)]


def arch_targets(arch):
    return ARCH_GRIDS[arch]["targets"]


def similarity_pairs(arch):
    """(source, target, source features, source info, target features, target meta) of
    every trained source and target of other data."""
    return [
        (
            source,
            target,
            SOURCE_DIR.format(arch=arch, source=source) + "features.npy",
            SOURCE_DIR.format(arch=arch, source=source) + "source.json",
            FEATURES.format(arch=arch, target=target, source=source),
            TASK_META.format(task=target, size=size_of(arch)),
        )
        for source in SOURCES_OF[arch]
        if source in TRAINED_SOURCES
        for target in arch_targets(arch)
        if not mtc.same_data(config, source, target)
    ]


def source_infos(arch):
    """source.json of each trained source; None for ImageNet (its size is known). A
    pretrained source's training data are not known here: it has none."""
    return {
        source: (
            None
            if source == mtc.IMAGENET
            else SOURCE_DIR.format(arch=arch, source=source) + "source.json"
        )
        for source in SOURCES_OF[arch]
        if source != mtc.NO_SOURCE and source not in PRETRAINED
    }


ANALYSIS = [
    "analysis/similarity.csv",
    "analysis/similarity.png",
    "analysis/data_per_class.csv",
    "analysis/data_per_class.png",
]


def get_curve_files(wildcards):
    """Runs on the learning-curve axis plus the full-data runs they are compared with (with
    `adaptive`, of the sources it fine-tunes)."""
    kept = set(grid_runs_of(wildcards.arch))
    chosen = [(r, f) for r, f in CURVE_RUNS if r.arch == wildcards.arch and r in kept]
    return [
        RUN_FRACTION.format(
            arch=r.arch,
            target=r.target,
            source=r.source,
            method=r.method.name,
            seed=r.seed,
            fraction=f,
        )
        for r, f in chosen
    ] + sorted({run_path(r) for r, _ in chosen})


def arch_outputs(arch):
    """Everything the grid reports of one architecture, under results/{arch}/."""
    prefix = ARCH.format(arch=arch)
    has_curves = any(r.arch == arch for r, _ in CURVE_RUNS)
    return [
        *([f"{prefix}analysis/learning_curves.png"] if has_curves else []),
        *([prefix + path for path in ANALYSIS] if similarity_pairs(arch) else []),
        # with `adaptive` the runs are known after the checkpoint: the tables pull them in
        *([] if ADAPTIVE else get_run_files(arch)),
        *transferability_outputs(arch),
        *expand(f"{prefix}{{target}}/roc.png", target=arch_targets(arch)),
        *(f"{prefix}{name}" for name in PRIMARY),
        *get_filter_grids(arch),
    ]


def transferability_outputs(arch):
    """The estimates' report, the adaptive report, and the probes of every target with
    fine-tuned runs."""
    prefix = ARCH.format(arch=arch)
    tuned = [
        t
        for t in arch_targets(arch)
        if any(r.arch == arch and r.target == t and r.method.kind == "ft" for r in RUNS)
    ]
    return [
        *(f"{prefix}transferability/{name}" for name in TRANSFERABILITY),
        *([f"{prefix}transferability/adaptive.md"] if ADAPTIVE else []),
        *expand(f"{prefix}probes/{{target}}/cka.png", target=tuned),
    ]


TRANSFERABILITY = ["estimates.csv", "tau.csv", "tau.md", "estimates.png"]


# The first architecture's Table II and Figure 3 are also the grid's, at results/ (with one
# architecture, as every config before architectures existed, they are the same files).
PRIMARY = ["table2.csv", "table2.md", "table2.tex", "figure3.png"]


def stale_primary_copies():
    """Copies at results/ whose first-architecture original is gone (its job failed)."""
    return [
        f"results/{name}"
        for name in PRIMARY
        if os.path.exists(f"results/{name}")
        and not os.path.exists(f"results/{ARCHS[0]}/{name}")
    ]


CROSS_ARCHITECTURE = [
    "results/architectures.csv",
    "results/architectures.md",
    "results/architectures.tex",
    "results/architectures.png",
]


def get_all_run_files(wildcards):
    return [path for arch in ARCHS for path in get_run_files(arch)]


# `snakemake --report` describes what has been built: on a partial grid, the grid's finished
# outputs (Snakemake otherwise stops at the first report file of a job not yet run).
REPORTING = "--report" in sys.argv


def get_final_outputs():
    outputs = [
        "results/audit/summary.md",
        *(f"results/{name}" for name in PRIMARY),
        *(CROSS_ARCHITECTURE if len(ARCHS) > 1 else []),
        *(path for arch in ARCHS for path in arch_outputs(arch)),
    ]
    return [path for path in outputs if os.path.exists(path)] if REPORTING else outputs


def filter_sources(arch):
    """Every source network, and the untrained one ('none'): the null of the structural
    measure."""
    return [s for s in SOURCES_OF[arch] if s != mtc.NO_SOURCE]


def filter_layers(arch):
    spec = architecture(arch)
    return config["report"]["filter_layers"] if arch == "vgg16" else spec.filter_layers


def get_filter_grids(arch):
    if not filter_sources(arch):
        return []
    return [
        *expand(
            "results/{arch}/filters/{source}/kernels.png",
            arch=arch,
            source=[*filter_sources(arch), mtc.NO_SOURCE],
        ),
        f"results/{arch}/filters/structural.csv",
    ]


def table_settings(targets):
    """What Table II and Figure 3 read: their targets, each task's dataset (a source of the
    target's own data is N.A.) and the report keys they use. A rule param, so that changing
    any of it rebuilds them, and nothing else does."""
    keys = ("fe_method", "ft_method", "groups", "alpha", "correction")
    return {
        "targets": list(targets),
        "tasks": {
            t: {"dataset": spec["dataset"]} for t, spec in config["tasks"].items()
        },
        "report": {k: config["report"][k] for k in keys},
    }


def table2_outputs(prefix):
    return {
        "csv": report(
            f"{prefix}table2.csv",
            caption="../report/table2.rst",
            category="Table II",
        ),
        "md": f"{prefix}table2.md",
        "tex": f"{prefix}table2.tex",
        "stats": report(
            f"{prefix}stats.csv", caption="../report/stats.rst", category="Comparisons"
        ),
        "stats_runs": f"{prefix}stats_runs.csv",
    }


def get_estimate_inputs(wildcards):
    return {
        "features": FEATURES.format(**wildcards),
        "outputs": FEATURE_OUTPUTS.format(**wildcards),
        "meta": TASK_META.format(task=wildcards.target, size=size_of(wildcards.arch)),
        "splits": expand(
            SPLIT, task=wildcards.target, seed=ARCH_GRIDS[wildcards.arch]["seeds"]
        ),
    }


def arch_estimates(arch, target=None):
    targets = [target] if target else arch_targets(arch)
    return [
        ESTIMATES.format(arch=arch, target=t, source=s)
        for t in targets
        for s in estimated_sources(arch, t)
    ]


def finetune_benchmarks(arch):
    """{target/source/seed: the benchmark files of the fine-tuning jobs the full grid would
    run for that source and seed}: the compute an adaptive choice saves."""
    jobs = {}
    for r in RUNS:
        if r.arch == arch and r.method.kind == "ft":
            name = f"{r.target}_{r.source}_{r.method.variant}_seed{r.seed}"
            jobs.setdefault(f"{r.target}/{r.source}/{r.seed}", set()).add(
                benchfile("finetune", f"{arch}/{name}")
            )
    return {key: sorted(paths) for key, paths in jobs.items()}
