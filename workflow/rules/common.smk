# Config validation, wildcard constraints, path patterns and input functions (get_*).

import re

from snakemake.utils import validate

# The package is imported from this checkout (the Snakefile imported _checkout), also where
# it is not installed (conda envs that hold only its dependencies) or another one is.
from medtransfer import config as mtc
from medtransfer import imagenet
from medtransfer.download import lands_as_folder

ENV = "../../envs/medtransfer.yaml"


validate(config, "../schemas/config.schema.yaml")
mtc.check_config(config)

SIZE = config["image_size"]

TASKS = list(config["tasks"])
TRAINED_SOURCES = mtc.trained_sources(config)


def active_sources():
    """The configured sources, less ImageNet where its weights are absent and may be skipped."""
    sources = list(config["sources"])
    settings = config["imagenet"]
    if mtc.IMAGENET in sources and settings["when_missing"] == "skip":
        if imagenet.cached_weights(SIZE, settings["weights_dir"]) is None:
            logger.warning(
                "imagenet source left out of this grid (imagenet.when_missing: skip): "
                + imagenet.missing_message(SIZE, settings["weights_dir"])
            )
            sources.remove(mtc.IMAGENET)
    return sources


SOURCES = active_sources()
RUNS = mtc.grid_runs(config, SOURCES)
CURVE_RUNS = mtc.learning_curve_runs(config, RUNS)
VARIANTS = sorted({r.method.variant for r in RUNS if r.method.kind == "ft"})
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
    source=alternatives([*TASKS, *mtc.SPECIAL_SOURCES]),
    trained=alternatives(TRAINED_SOURCES),
    method=r"[a-z0-9]+(-[a-z0-9]+)*",
    variant=r"(all|last|first|firstlast)(-randhead)?",
    seed=r"\d+",
    fraction=r"0\.\d+",
    size=r"\d+",


# Paths: each names its wildcards; the rule files use these patterns.
PREPARED = "results/prepared/{dataset}/{size}px/"
TASK_META = "results/tasks/{task}/{size}px/meta.json"
SPLIT = "results/splits/{task}/seed{seed}.json"
SPLIT_FRACTION = "results/splits/{task}/seed{seed}_frac{fraction}.json"
SOURCE_MODEL = "results/models/{source}/model.keras"
# Keras' published VGG16 files are legacy HDF5: the name must end in .h5, not .weights.h5
# (which Keras 3 reads as its own format).
IMAGENET_WEIGHTS = "results/models/imagenet/vgg16_{size}px.h5"
# The leakage audit: duplicates within a task, and source images that reappear in a target.
AUDIT = "results/audit/{task}/"
OVERLAP = "results/audit/overlap/{trained}/{target}"
FEATURES = "results/features/{target}/{source}.npy"
FINETUNED = "results/finetune/{target}/{source}/{variant}/seed{seed}/"
RUN = "results/runs/{target}/{source}/{method}/seed{seed}.json"
# The learning-curve axis: the same stages on a subsampled training split.
FINETUNED_FRACTION = (
    "results/finetune/{target}/{source}/{variant}/seed{seed}_frac{fraction}/"
)
RUN_FRACTION = "results/runs/{target}/{source}/{method}/seed{seed}_frac{fraction}.json"


def logfile(rule_name, pattern):
    return f"logs/{rule_name}/{pattern}.log"


def benchfile(rule_name, pattern):
    return f"results/benchmarks/{rule_name}/{pattern}.tsv"


def grid_downloads():
    """{path under data_root: (dataset, download entry)} of the datasets the grid reads that
    say where their files come from."""
    used = {
        config["tasks"][t]["dataset"] for t in [*config["targets"], *TRAINED_SOURCES]
    }
    return {
        spec["path"]: (name, spec["download"])
        for name, spec in config["datasets"].items()
        if "download" in spec and name in used
    }


DATA_ROOT = config["data_root"].rstrip("/")
DOWNLOADS = grid_downloads()
DOWNLOAD_FOLDERS = [p for p, (_, d) in DOWNLOADS.items() if lands_as_folder(d)]
DOWNLOAD_FILES = [p for p in DOWNLOADS if p not in DOWNLOAD_FOLDERS]


def get_downloaded(wildcards):
    """A dataset's own files where a download rule provides them (prepare waits for it)."""
    path = config["datasets"][wildcards.dataset]["path"]
    return [f"{DATA_ROOT}/{path}"] if path in DOWNLOADS else []


def tasks_of(dataset):
    """The config's tasks on a dataset: prepare decodes the images of all of them at once."""
    return {name: t for name, t in config["tasks"].items() if t["dataset"] == dataset}


def task_data(task):
    """A task's images (its dataset's decoded array) and metadata (its rows of that array)."""
    dataset = config["tasks"][task]["dataset"]
    return {
        "images": PREPARED.format(dataset=dataset, size=SIZE) + "images.npy",
        "meta": TASK_META.format(task=task, size=SIZE),
    }


def get_source_model(wildcards):
    """What extract and finetune load as the source: nothing for 'none' (random init)."""
    if wildcards.source == mtc.NO_SOURCE:
        return []
    if wildcards.source == mtc.IMAGENET:
        return IMAGENET_WEIGHTS.format(size=SIZE)
    return SOURCE_MODEL.format(source=wildcards.source)


def get_target_data(wildcards):
    return task_data(wildcards.target)


def get_trained_data(wildcards):
    return task_data(wildcards.trained)


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
            target=wildcards.target, source=wildcards.source
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


def network_params():
    """What every Keras job reads to build a network and run it: width, feature layer and
    the accelerator switches."""
    return {
        "width": config["width"],
        "feature_layer": config["feature_layer"],
        **config["accelerator"],
    }


def training_params(stage):
    """The training settings of one stage plus what every Keras job reads."""
    return {**config[stage], **network_params()}


def run_path(run):
    return RUN.format(
        target=run.target, source=run.source, method=run.method.name, seed=run.seed
    )


def get_run_files(target=None):
    return [run_path(r) for r in RUNS if target is None or r.target == target]


def get_finetune_histories(wildcards):
    return sorted(
        {
            FINETUNED.format(
                target=r.target, source=r.source, variant=r.method.variant, seed=r.seed
            )
            + "history.csv"
            for r in RUNS
            if r.target == wildcards.target and r.method.kind == "ft"
        }
    )


def similarity_pairs():
    """(source, target, source features, source info, target features, target meta) of
    every trained source and target of other data."""
    return [
        (
            source,
            target,
            f"results/models/{source}/features.npy",
            f"results/models/{source}/source.json",
            FEATURES.format(target=target, source=source),
            TASK_META.format(task=target, size=SIZE),
        )
        for source in SOURCES
        if source in TRAINED_SOURCES
        for target in config["targets"]
        if not mtc.same_data(config, source, target)
    ]


def source_infos():
    """source.json of each trained source; None for ImageNet (its size is known)."""
    return {
        source: (
            None if source == mtc.IMAGENET else f"results/models/{source}/source.json"
        )
        for source in SOURCES
        if source != mtc.NO_SOURCE
    }


ANALYSIS = [
    "results/analysis/similarity.csv",
    "results/analysis/similarity.png",
    "results/analysis/data_per_class.csv",
    "results/analysis/data_per_class.png",
]


def get_curve_files():
    """Runs on the learning-curve axis plus the full-data runs they are compared with."""
    return [
        RUN_FRACTION.format(
            target=r.target,
            source=r.source,
            method=r.method.name,
            seed=r.seed,
            fraction=f,
        )
        for r, f in CURVE_RUNS
    ] + sorted({run_path(r) for r, _ in CURVE_RUNS})


def get_final_outputs():
    return [
        *(["results/analysis/learning_curves.png"] if CURVE_RUNS else []),
        *(ANALYSIS if similarity_pairs() else []),
        *get_run_files(),
        "results/audit/summary.md",
        *expand("results/{target}/roc.png", target=config["targets"]),
        "results/table2.csv",
        "results/table2.md",
        "results/table2.tex",
        "results/figure3.png",
        *get_filter_grids(),
    ]


# Every source network, and the untrained one ('none'): the null of the structural measure.
FILTER_SOURCES = [s for s in SOURCES if s != mtc.NO_SOURCE]
NULL_FILTERS = "results/filters/none/structural.json"
FILTER_LAYERS = config["report"]["filter_layers"]


def get_filter_grids():
    return [
        *expand(
            "results/filters/{source}/kernels.png",
            source=[*FILTER_SOURCES, mtc.NO_SOURCE] if FILTER_SOURCES else [],
        ),
        *(["results/filters/structural.csv"] if FILTER_SOURCES else []),
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
            f"{prefix}stats.csv", caption="../report/stats.rst", category="Statistics"
        ),
        "stats_runs": f"{prefix}stats_runs.csv",
    }
