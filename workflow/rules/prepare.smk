rule prepare:
    """Decode every image of a task once: RGB, resized, one memory-mappable uint8 array."""
    output:
        images=f"{PREPARED}images.npy",
        meta=f"{PREPARED}meta.json",
    log:
        logfile("prepare", "{task}_{size}px"),
    benchmark:
        benchfile("prepare", "{task}_{size}px")
    conda:
        ENV
    threads: 2
    params:
        task=lambda w: config["tasks"][w.task],
        dataset=lambda w: config["datasets"][config["tasks"][w.task]["dataset"]],
        data_root=config["data_root"],
        max_bad_fraction=config["prepare"]["max_bad_fraction"],
    script:
        "../scripts/prepare.py"


rule split:
    """Seeded stratified train/val/test indices and balanced class weights of a task."""
    input:
        meta=prepared("{task}", "meta.json"),
    output:
        SPLIT,
    log:
        logfile("split", "{task}_seed{seed}"),
    benchmark:
        benchfile("split", "{task}_seed{seed}")
    conda:
        ENV
    params:
        val=config["split"]["val"],
        test=config["split"]["test"],
        mode=lambda w: config["tasks"][w.task]["split"],
    script:
        "../scripts/split.py"


rule subsample:
    """A seed's split with only a fraction of each class's training images (learning curves)."""
    input:
        split=SPLIT,
        meta=prepared("{task}", "meta.json"),
    output:
        SPLIT_FRACTION,
    log:
        logfile("subsample", "{task}_seed{seed}_frac{fraction}"),
    benchmark:
        benchfile("subsample", "{task}_seed{seed}_frac{fraction}")
    conda:
        ENV
    script:
        "../scripts/subsample.py"
