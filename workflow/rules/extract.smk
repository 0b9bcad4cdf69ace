rule extract:
    """Frozen-network features of every target image, shared by all seeds and classifiers;
    in the same forward pass each stage's pooled output and the source's own softmax (what
    the transferability estimators and the k-NN probe read)."""
    input:
        unpack(get_target_data),
        source=get_source_model,
    output:
        features=FEATURES,
        info=FEATURES.replace(".npy", ".json"),
        outputs=FEATURE_OUTPUTS,
    log:
        logfile("extract", "{arch}/{target}_{source}"),
    benchmark:
        benchfile("extract", "{arch}/{target}_{source}")
    conda:
        ENV
    threads: 1
    resources:
        gpu=1,
    params:
        # not the fine-tuning settings: features do not depend on them
        training=lambda w: GRID.network_params(w.arch),
        seed=config["pretrain_seed"],
        batch_size=64,
    script:
        "../scripts/extract.py"
