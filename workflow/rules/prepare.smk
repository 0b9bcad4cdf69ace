rule prepare:
    """Decode every image of a task once: RGB, resized, one memory-mappable uint8 array."""
    output:
        images=PREPARED + "/images.npy",
        meta=PREPARED + "/meta.json",
    params:
        task=lambda w: config["tasks"][w.task],
        dataset=lambda w: config["datasets"][config["tasks"][w.task]["dataset"]],
        data_root=config["data_root"],
        max_bad_fraction=config["prepare"]["max_bad_fraction"],
    threads: 2
    log:
        logfile("prepare", "{task}_{size}px"),
    benchmark:
        benchfile("prepare", "{task}_{size}px")
    script:
        "../scripts/prepare.py"


rule split:
    """Seeded stratified train/val/test indices and balanced class weights of a task."""
    input:
        meta=prepared("{task}", "meta.json"),
    output:
        SPLIT,
    params:
        val=config["split"]["val"],
        test=config["split"]["test"],
        mode=lambda w: config["tasks"][w.task]["split"],
    log:
        logfile("split", "{task}_seed{seed}"),
    benchmark:
        benchfile("split", "{task}_seed{seed}")
    script:
        "../scripts/split.py"
