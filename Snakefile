# medtransfer: which source data and which transfer method help a medical target task?
#
# The pipeline, stage by stage (one rule file each):
#   download  a dataset's files, where absent  -> {data_root}/{dataset path}
#   prepare   decode a dataset's images once    -> results/prepared/{dataset}/{size}px/
#   select    a task's classes and rows of it   -> results/tasks/{task}/{size}px/meta.json
#   audit     duplicates within a task, and     -> results/audit/{task}/pairs.csv,
#             source images seen in a target       results/audit/overlap/{source}/{target}.csv
#   split     grouped train/val/test, no leaks  -> results/splits/{task}/seed{seed}.json
# Everything a network computes lies under its architecture ({arch}: vgg16, resnet50, ...):
#   pretrain  a network from scratch on a source -> results/{arch}/models/{source}/
#   extract   frozen features of a target       -> results/{arch}/features/{target}/{source}.npy
#   finetune  retrain on a target's seed split  -> results/{arch}/finetune/{target}/{source}/{variant}/seed{seed}/
#   score     classifier + metrics of one run   -> results/{arch}/runs/{target}/{source}/{method}/seed{seed}.json
#   estimate  transferability estimates from the -> results/{arch}/transferability/{target}/{source}.csv
#             frozen features; k-NN probe          results/{arch}/probes/{target}/{source}_knn.csv
#   transferability  estimators vs measured gains -> results/{arch}/transferability/tau.md
#   choose_sources   (adaptive) top-k sources     -> results/{arch}/transferability/{target}/chosen.json
#   probes    CKA source vs fine-tuned per stage  -> results/{arch}/probes/{target}/cka.png
#   table2, figure, filters                     -> results/{arch}/: Table II, Figure 3, filter grids
#   compare_architectures                       -> results/architectures.{csv,md,tex,png}
import runpy

from snakemake.utils import min_version, update_config

min_version("9.0")

# This checkout's package, also where another checkout is installed (see _checkout.py); the
# scripts folder itself stays off sys.path.
runpy.run_path(f"{workflow.basedir}/workflow/scripts/_checkout.py")
from medtransfer.config import apply_includes, load_config, refuse_alias_bombs
from medtransfer.snakemake_locks import keep_other_runs_locks

# Snakemake >= 9.17 deletes every run's locks when one ends: keep the others' (see module)
keep_other_runs_locks()

# before anything walks the config: nested YAML aliases can stand for 10^9 values
refuse_alias_bombs(config)

# config.yaml is the demo grid; a --configfile (e.g. config/fok2019.yaml) replaces it whole
# rather than being merged into it, so no demo setting leaks into a paper-scale grid. It is
# read by medtransfer, whose errors name the file; --config values still win.
if not workflow.overwrite_configfiles:
    defaults = load_config("config.yaml")
    update_config(defaults, config)
    config.update(defaults)
# datasets and tasks declared once in config/datasets/ and taken from there (`include:`)
apply_includes(config, workflow.basedir)


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/prepare.smk"
include: "workflow/rules/audit.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/extract.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/score.smk"
include: "workflow/rules/transferability.smk"
include: "workflow/rules/report.smk"


# Bookkeeping rules that read and write a few JSON files, and the downloads (compute nodes
# of a cluster often have no internet): they run where Snakemake runs, not in the queue.
localrules:
    all,
    download,
    download_folder,
    select,
    split,
    subsample,
    audit_report,
    primary,
    choose_sources,
    adaptive_report,


rule all:
    default_target: True
    input:
        get_final_outputs(),
