rule prepare:
    """Decode every image the config's tasks take from a dataset once: RGB, resized, uint8."""
    input:
        lambda w: GRID.downloaded(w.dataset),
    output:
        images=f"{PREPARED}images.npy",
        index=f"{PREPARED}index.json",
        fingerprints=f"{PREPARED}fingerprints.npz",
    log:
        logfile("prepare", "{dataset}_{size}px"),
    benchmark:
        benchfile("prepare", "{dataset}_{size}px")
    priority: PREPARE_PRIORITY
    conda:
        ENV
    threads: 2
    params:
        dataset=lambda w: config["datasets"][w.dataset],
        tasks=lambda w: GRID.tasks_of(w.dataset),
        data_root=DATA_ROOT,
        limits=config["prepare"],
    script:
        "../scripts/prepare.py"


rule select:
    """A task's share of its prepared dataset: its classes, capped rows, labels and groups."""
    input:
        index=lambda w: GRID.dataset_index(w.task, w.size),
    output:
        meta=TASK_META,
    log:
        logfile("select", "{task}_{size}px"),
    benchmark:
        benchfile("select", "{task}_{size}px")
    priority: UPSTREAM_PRIORITY
    conda:
        ENV
    script:
        # not select.py: Snakemake puts this folder on sys.path, and the standard library
        # has a module called select
        "../scripts/select_task.py"


rule split:
    """Seeded train/val/test indices that keep each group of images (patient, lesion, photo,
    duplicates) in one split; the leakage that remains is counted and, by default, an error.
    """
    input:
        meta=TASK_META.format(task="{task}", size=SIZE),
        pairs=f"{AUDIT}pairs.csv",
    output:
        SPLIT,
    log:
        logfile("split", "{task}_seed{seed}"),
    benchmark:
        benchfile("split", "{task}_seed{seed}")
    priority: UPSTREAM_PRIORITY
    conda:
        ENV
    params:
        val=config["split"]["val"],
        test=config["split"]["test"],
        size_tolerance=config["split"]["size_tolerance"],
        mode=lambda w: config["tasks"][w.task]["split"],
        merge_near=config["audit"]["merge_near"],
        on_leak=config["audit"]["on_leak"],
    script:
        "../scripts/split.py"


rule subsample:
    """A seed's split with only a fraction of each class's training images (learning curves)."""
    input:
        split=SPLIT,
        meta=TASK_META.format(task="{task}", size=SIZE),
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
