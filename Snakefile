# medtransfer: which source data and which transfer method help a medical target task?
#
# The pipeline, stage by stage (one rule file each):
#   prepare   decode every image of a task once -> results/prepared/{task}/{size}px/
#   split     seeded stratified train/val/test  -> results/splits/{task}/seed{seed}.json
#   pretrain  VGG16 from scratch on a source    -> results/models/{source}/
#   extract   frozen features of a target       -> results/features/{target}/{source}.npy
#   finetune  retrain on a target's seed split  -> results/finetune/{target}/{source}/{variant}/seed{seed}/
#   score     classifier + metrics of one run   -> results/runs/{target}/{source}/{method}/seed{seed}.json
#   table2, figure, filters                     -> the paper's Table II, Figure 3, filter grids
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/prepare.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/extract.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/score.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        get_final_outputs(),
    default_target: True
