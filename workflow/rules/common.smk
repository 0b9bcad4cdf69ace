# Config validation, wildcard constraints, and adapters from Snakemake's wildcards and
# checkpoints to medtransfer.grid, where the grid, its paths and every job's inputs live.

import json
import os
import re
import sys

# The package is imported from this checkout (the Snakefile imported _checkout), also where
# it is not installed (conda envs that hold only its dependencies) or another one is.
from medtransfer import config as mtc
from medtransfer import imagenet, runtime, warm
from medtransfer.grid import *

ENV = "../../envs/medtransfer.yaml"

# The source networks gate most of a grid (extraction, fine-tuning and scoring wait on
# them), so they and the steps before them run first; Snakemake otherwise fills free cores
# with whatever is ready and started a demo's last pretraining four minutes in. prepare
# takes two cores and Snakemake's scheduler maximises the sum of the started jobs'
# priorities: it must outweigh any two one-core jobs, or it waits until both cores happen
# to be free at once.
UPSTREAM_PRIORITY = 10
PREPARE_PRIORITY = 2 * UPSTREAM_PRIORITY + 1


# Where the data lie is the machine's business, not the grid's: the config files leave
# data_root out; --config data_root=... or $MEDTRANSFER_DATA_ROOT (set once) say it.
if "data_root" not in config:
    config["data_root"] = os.environ.get(mtc.DATA_ROOT_VARIABLE, "data")
mtc.validate_schema(
    config, os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.yaml")
)
mtc.check_config(config)


def active_sources(arch, grid):
    """An architecture's sources, less ImageNet where its weights are neither cached nor
    downloadable from here and may be skipped."""
    sources = list(grid["sources"])
    why = (
        imagenet.skip_reason(grid["image_size"], config["imagenet"], arch)
        if mtc.IMAGENET in sources
        else None
    )
    if why:
        logger.warning(
            f"imagenet source left out of the {arch} grid (imagenet.when_missing: skip): {why}"
        )
        sources.remove(mtc.IMAGENET)
    return sources


def chosen_sources(arch, target, seed):
    """The adaptive grid's top-k sources of a target on one seed, once the checkpoint has
    decided from that seed's estimates."""
    chosen = checkpoints.choose_sources.get(arch=arch, target=target, seed=seed)
    with open(chosen.output[0]) as handle:
        return json.load(handle)["selected"]


# One spelling of the folder (relative or absolute, trailing slash, through a link): another
# spelling of the same folder changes no job's params, so nothing reruns.
DATA_ROOT = os.path.realpath(config["data_root"])
GRID = Grid(
    config,
    {
        arch: active_sources(arch, g)
        for arch, g in mtc.architecture_grids(config).items()
    },
    DATA_ROOT,
    chosen_sources,
)
SIZE = config["image_size"]
ARCHS = GRID.archs
SOURCES_OF = GRID.sources_of
ADAPTIVE = GRID.adaptive
DOWNLOADS = GRID.downloads
# A folder that is not there stops the plan before any job: otherwise Snakemake would see
# changed params, delete the prepared data and only then fail for lack of images.
mtc.check_data_present(config, DATA_ROOT, GRID.trained, GRID.pretrained, DOWNLOADS)


def alternatives(names, escape=False):
    names = [re.escape(n) for n in names] if escape else list(names)
    return "|".join(sorted(names, key=len, reverse=True)) or "__none__"


TASKS = list(config["tasks"])


wildcard_constraints:
    dataset=alternatives(config["datasets"]),
    task=alternatives(TASKS),
    target=alternatives(TASKS),
    source=alternatives([*TASKS, *mtc.SPECIAL_SOURCES, *GRID.pretrained]),
    trained=alternatives(GRID.trained),
    pretrained=alternatives(GRID.pretrained),
    arch=alternatives(ARCHS),
    method=r"[a-z0-9]+(-[a-z0-9]+)*",
    variant=r"(all|last|first|firstlast)(-randhead)?",
    seed=r"\d+",
    fraction=r"0\.\d+",
    size=r"\d+",
    ext=r"h5|pth",


# Input functions: Snakemake's wildcards in, the grid's answer out.


def get_source_model(w):
    return GRID.source_model(w.arch, w.source)


def get_target_data(w):
    return GRID.arch_task_data(w.arch, w.target)


def get_split(w):
    return GRID.split(w.target, w.seed, w.get("fraction"))


def get_score_inputs(w):
    return GRID.score_inputs(
        w.arch, w.target, w.source, w.method, w.seed, w.get("fraction")
    )


def get_run_files(w):
    return GRID.run_files(w.arch, w.get("target"))


def get_finetune_histories(w):
    return [f"{d}history.csv" for d in GRID.finetune_dirs(w.arch, w.target)]


def training(stage):
    """A Keras rule's `training` param: the stage's settings and the network's."""
    return lambda w: GRID.training_params(stage, w.arch)


# `snakemake --report` describes what has been built: on a partial grid, the grid's finished
# outputs (Snakemake otherwise stops at the first report file of a job not yet run).
REPORTING = describes_only(sys.argv)


def get_final_outputs():
    outputs = GRID.final_outputs()
    return [path for path in outputs if os.path.exists(path)] if REPORTING else outputs


# A local run's jobs start in forks of one process that has imported TensorFlow, Keras and
# scikit-learn once (medtransfer.warm; the jobs' scripts hand themselves over in
# _checkout.py): most of a short job on 2 cores was its process starting.
WARM = {}
WARM_LOG = logfile("warm", "interpreter")


onstart:
    WARM["process"] = start_warm_interpreter()


onsuccess:
    warm.stop(WARM.get("process"))


onerror:
    warm.stop(WARM.get("process"))
    # A failed rebuild of the first architecture's Table II removes its outputs; their copies
    # at results/ must go too, or they would show the table from before the failure.
    for name in stale_primary_copies():
        os.remove(name)


def start_warm_interpreter():
    cold = warm.reason_to_stay_cold(
        wanted=config["warm_start"],
        local=workflow.local_exec,
        deployed=bool(workflow.deployment_settings.deployment_method),
        backend=config["keras_backend"],
        jobs=len(list(workflow.dag.needrun_jobs())),
        gpus=runtime.visible_gpu_count(),
    )
    if cold:
        logger.info(f"medtransfer: each job starts a process of its own ({cold})")
        return None
    logger.info(
        "medtransfer: jobs start in forks of one warm interpreter (log: "
        f"{WARM_LOG}; warm_start: false gives each job a process of its own)"
    )
    return warm.start(
        config["keras_backend"], f"{workflow.basedir}/workflow/scripts", WARM_LOG
    )


def stale_primary_copies():
    """Copies at results/ whose first-architecture original is gone (its job failed)."""
    return [
        f"results/{name}"
        for name in PRIMARY
        if os.path.exists(f"results/{name}")
        and not os.path.exists(f"results/{ARCHS[0]}/{name}")
    ]


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
