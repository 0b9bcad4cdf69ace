# Keras rules (pretrain, extract, finetune, filters) default to one thread: on a small CPU
# machine two one-thread jobs beat one two-thread job, since much of such a job is
# TensorFlow's single-threaded start-up. profiles/local and profiles/slurm raise it.


rule pretrain:
    """Train a network from scratch on a source task (the paper's source networks)."""
    input:
        unpack(lambda w: GRID.arch_task_data(w.arch, w.trained)),
        split=SPLIT.format(task="{trained}", seed=config["pretrain_seed"]),
    output:
        model="results/{arch}/models/{trained}/model.keras",
        history=report(
            "results/{arch}/models/{trained}/history.csv",
            caption="../report/history.rst",
            category="Source models",
            subcategory="{arch}",
        ),
        info="results/{arch}/models/{trained}/source.json",
        features="results/{arch}/models/{trained}/features.npy",
    log:
        logfile("pretrain", "{arch}/{trained}"),
    benchmark:
        benchfile("pretrain", "{arch}/{trained}")
    priority: UPSTREAM_PRIORITY
    conda:
        ENV
    threads: 1
    resources:
        gpu=1,
    params:
        training=training("pretrain"),
        seed=config["pretrain_seed"],
        checkpoint_dir="results/{arch}/checkpoints/pretrain/{trained}",
    script:
        "../scripts/pretrain.py"


rule fetch_imagenet:
    """The ImageNet weights of an architecture: Keras' from its cache (or downloaded where a
    network exists), or the file a package installed (EfficientNet-Lite0)."""
    output:
        IMAGENET_WEIGHTS,
    log:
        logfile("fetch_imagenet", "{arch}/{size}px_{ext}"),
    benchmark:
        benchfile("fetch_imagenet", "{arch}/{size}px_{ext}")
    conda:
        ENV
    params:
        weights_dir=config["imagenet"]["weights_dir"],
    script:
        "../scripts/fetch_imagenet.py"


rule pretrained:
    """A network pretrained elsewhere (the config's `pretrained` section): its file checked
    against the checksum and, layer by layer, against the architecture, then saved as the
    source network, before any job trains on it."""
    input:
        lambda w: GRID.pretrained_weights(w.pretrained),
    output:
        SOURCE_MODEL.replace("{source}", "{pretrained}"),
    log:
        logfile("pretrained", "{arch}/{pretrained}"),
    benchmark:
        benchfile("pretrained", "{arch}/{pretrained}")
    conda:
        ENV
    params:
        entry=lambda w: config["pretrained"][w.pretrained],
        image_size=lambda w: GRID.size_of(w.arch),
        keras_backend=config["keras_backend"],
    script:
        "../scripts/pretrained.py"
