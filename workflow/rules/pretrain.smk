rule pretrain:
    """Train VGG16 from scratch on a source task (the paper's source networks)."""
    input:
        images=prepared("{trained}", "images.npy"),
        meta=prepared("{trained}", "meta.json"),
        split=SPLIT.format(task="{trained}", seed=config["pretrain_seed"]),
    output:
        model="results/models/{trained}/model.keras",
        history=report(
            "results/models/{trained}/history.csv",
            caption="../report/history.rst",
            category="Source models",
        ),
        info="results/models/{trained}/source.json",
    params:
        training=training_params("pretrain"),
        seed=config["pretrain_seed"],
        checkpoint_dir="results/checkpoints/pretrain/{trained}",
    threads: 2
    resources:
        gpu=1,
    log:
        logfile("pretrain", "{trained}"),
    benchmark:
        benchfile("pretrain", "{trained}")
    script:
        "../scripts/pretrain.py"


rule fetch_imagenet:
    """Keras' VGG16 ImageNet weights, from its cache (or downloaded where a network exists)."""
    output:
        IMAGENET_WEIGHTS,
    params:
        weights_dir=config["imagenet"]["weights_dir"],
    log:
        logfile("fetch_imagenet", "{size}px"),
    benchmark:
        benchfile("fetch_imagenet", "{size}px")
    script:
        "../scripts/fetch_imagenet.py"
