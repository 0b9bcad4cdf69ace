# Config validation, wildcard constraints, path patterns and input functions (get_*).
from snakemake.utils import validate
from medtransfer import config as mtc
from medtransfer import imagenet


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
VARIANTS = sorted({r.method.variant for r in RUNS if r.method.kind == "ft"})


def alternatives(names):
    return "|".join(sorted(names, key=len, reverse=True)) or "__none__"


wildcard_constraints:
    task=alternatives(TASKS),
    target=alternatives(TASKS),
    source=alternatives([*TASKS, *mtc.SPECIAL_SOURCES]),
    trained=alternatives(TRAINED_SOURCES),
    method=r"[a-z0-9]+(-[a-z0-9]+)*",
    variant=r"(all|last|first|firstlast)(-randhead)?",
    seed=r"\d+",
    size=r"\d+",


# Paths: each names its wildcards; the rule files use these patterns.
PREPARED = "results/prepared/{task}/{size}px"
SPLIT = "results/splits/{task}/seed{seed}.json"
SOURCE_MODEL = "results/models/{source}/model.keras"
IMAGENET_WEIGHTS = "results/models/imagenet/vgg16_{size}px.weights.h5"
FEATURES = "results/features/{target}/{source}.npy"
FINETUNED = "results/finetune/{target}/{source}/{variant}/seed{seed}"
RUN = "results/runs/{target}/{source}/{method}/seed{seed}.json"


def logfile(rule_name, pattern):
    return f"logs/{rule_name}/{pattern}.log"


def benchfile(rule_name, pattern):
    return f"results/benchmarks/{rule_name}/{pattern}.tsv"


def prepared(task, name):
    return PREPARED.format(task=task, size=SIZE) + "/" + name


def get_source_model(wildcards):
    """What extract and finetune load as the source: nothing for 'none' (random init)."""
    if wildcards.source == mtc.NO_SOURCE:
        return []
    if wildcards.source == mtc.IMAGENET:
        return IMAGENET_WEIGHTS.format(size=SIZE)
    return SOURCE_MODEL.format(source=wildcards.source)


def get_target_data(wildcards):
    return {
        "images": prepared(wildcards.target, "images.npy"),
        "meta": prepared(wildcards.target, "meta.json"),
    }


def get_score_inputs(wildcards):
    method = mtc.parse_method(wildcards.method)
    inputs = {
        **get_target_data(wildcards),
        "split": SPLIT.format(task=wildcards.target, seed=wildcards.seed),
    }
    if method.kind == "fe":
        inputs["features"] = FEATURES.format(target=wildcards.target, source=wildcards.source)
        inputs["features_info"] = inputs["features"].replace(".npy", ".json")
    elif method.kind == "ft":
        run_dir = FINETUNED.format(variant=method.variant, **wildcards)
        inputs["features"] = f"{run_dir}/features.npy"
        inputs["network_scores"] = f"{run_dir}/softmax.npy"
        inputs["training"] = f"{run_dir}/training.json"
    return inputs


def training_params(stage):
    """The training settings of one stage plus the switches shared by every Keras job."""
    return {
        **config[stage],
        "width": config["width"],
        "feature_layer": config["feature_layer"],
        **config["accelerator"],
    }


def run_path(run):
    return RUN.format(target=run.target, source=run.source, method=run.method.name, seed=run.seed)


def get_run_files(target=None):
    return [run_path(r) for r in RUNS if target is None or r.target == target]


def get_final_outputs():
    return [
        *get_run_files(),
        "results/table2.csv",
        "results/table2.md",
        "results/table2.tex",
        "results/figure3.png",
        *get_filter_grids(),
    ]
