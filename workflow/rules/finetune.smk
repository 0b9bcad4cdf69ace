rule finetune:
    """Retrain the source network on a target's seed split (all layers, or some blocks)."""
    input:
        unpack(get_target_data),
        source=get_source_model,
        split=SPLIT.format(task="{target}", seed="{seed}"),
    output:
        features=FINETUNED + "/features.npy",
        softmax=FINETUNED + "/softmax.npy",
        training=FINETUNED + "/training.json",
        history=FINETUNED + "/history.csv",
    params:
        training=training_params("finetune"),
        checkpoint_dir="results/checkpoints/finetune/{target}/{source}/{variant}/seed{seed}",
    threads: 2
    resources:
        gpu=1,
    log:
        logfile("finetune", "{target}_{source}_{variant}_seed{seed}"),
    benchmark:
        benchfile("finetune", "{target}_{source}_{variant}_seed{seed}")
    script:
        "../scripts/finetune.py"
