rule finetune:
    """Retrain the source network on a target's seed split (all layers, or some blocks)."""
    input:
        unpack(get_target_data),
        source=get_source_model,
        split=get_split,
    output:
        features=f"{FINETUNED}features.npy",
        softmax=f"{FINETUNED}softmax.npy",
        training=f"{FINETUNED}training.json",
        history=f"{FINETUNED}history.csv",
        cka=f"{FINETUNED}cka.csv",
    log:
        logfile("finetune", "{arch}/{target}_{source}_{variant}_seed{seed}"),
    benchmark:
        benchfile("finetune", "{arch}/{target}_{source}_{variant}_seed{seed}")
    conda:
        ENV
    threads: 1
    resources:
        gpu=1,
    params:
        training=training("finetune"),
        checkpoint_dir="results/{arch}/checkpoints/finetune/{target}/{source}/{variant}/seed{seed}",
        probes=config["probes"],
    script:
        "../scripts/finetune.py"


use rule finetune as finetune_fraction with:
    output:
        features=f"{FINETUNED_FRACTION}features.npy",
        softmax=f"{FINETUNED_FRACTION}softmax.npy",
        training=f"{FINETUNED_FRACTION}training.json",
        history=f"{FINETUNED_FRACTION}history.csv",
        cka=f"{FINETUNED_FRACTION}cka.csv",
    log:
        logfile(
            "finetune", "{arch}/{target}_{source}_{variant}_seed{seed}_frac{fraction}"
        ),
    benchmark:
        benchfile(
            "finetune", "{arch}/{target}_{source}_{variant}_seed{seed}_frac{fraction}"
        )
    params:
        training=training("finetune"),
        checkpoint_dir="results/{arch}/checkpoints/finetune/{target}/{source}/{variant}/seed{seed}_frac{fraction}",
        probes=config["probes"],
