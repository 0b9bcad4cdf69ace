# Keras rules (pretrain, extract, finetune, filters) default to one thread: on a small CPU
# machine two one-thread jobs beat one two-thread job, since much of such a job is
# TensorFlow's single-threaded start-up. profiles/local and profiles/slurm raise it.


rule pretrain:
    """Train VGG16 from scratch on a source task (the paper's source networks)."""
    input:
        unpack(get_trained_data),
        split=SPLIT.format(task="{trained}", seed=config["pretrain_seed"]),
    output:
        model="results/models/{trained}/model.keras",
        history=report(
            "results/models/{trained}/history.csv",
            caption="../report/history.rst",
            category="Source models",
        ),
        info="results/models/{trained}/source.json",
        features="results/models/{trained}/features.npy",
    log:
        logfile("pretrain", "{trained}"),
    benchmark:
        benchfile("pretrain", "{trained}")
    conda:
        ENV
    threads: 1
    resources:
        gpu=1,
    params:
        training=training_params("pretrain"),
        seed=config["pretrain_seed"],
        checkpoint_dir="results/checkpoints/pretrain/{trained}",
    script:
        "../scripts/pretrain.py"


rule fetch_imagenet:
    """Keras' VGG16 ImageNet weights, from its cache (or downloaded where a network exists)."""
    output:
        IMAGENET_WEIGHTS,
    log:
        logfile("fetch_imagenet", "{size}px"),
    benchmark:
        benchfile("fetch_imagenet", "{size}px")
    conda:
        ENV
    params:
        weights_dir=config["imagenet"]["weights_dir"],
    script:
        "../scripts/fetch_imagenet.py"
