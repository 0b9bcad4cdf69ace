# The leakage audit runs before any training: split reads the duplicates of its task, and
# every run records how many of its test images have a copy among its source's images.


rule audit:
    """Exact and near-duplicate images within one task."""
    input:
        meta=TASK_META.format(task="{task}", size=SIZE),
        fingerprints=lambda w: GRID.fingerprints(w.task),
    output:
        pairs=f"{AUDIT}pairs.csv",
        summary=f"{AUDIT}summary.json",
    log:
        logfile("audit", "{task}"),
    benchmark:
        benchfile("audit", "{task}")
    priority: UPSTREAM_PRIORITY
    conda:
        ENV
    params:
        near_bits=config["audit"]["near_bits"],
        near_correlation=config["audit"]["near_correlation"],
    script:
        "../scripts/audit.py"


rule audit_overlap:
    """Images of a source task that reappear (exactly or nearly) in a target task."""
    input:
        source_meta=TASK_META.format(task="{trained}", size=SIZE),
        source_fingerprints=lambda w: GRID.fingerprints(w.trained),
        target_meta=TASK_META.format(task="{target}", size=SIZE),
        target_fingerprints=lambda w: GRID.fingerprints(w.target),
    output:
        pairs=f"{OVERLAP}.csv",
        summary=f"{OVERLAP}.json",
    log:
        logfile("audit_overlap", "{trained}_{target}"),
    benchmark:
        benchfile("audit_overlap", "{trained}_{target}")
    conda:
        ENV
    params:
        near_bits=config["audit"]["near_bits"],
        near_correlation=config["audit"]["near_correlation"],
        on_overlap=config["audit"]["on_overlap"],
    script:
        "../scripts/audit_overlap.py"


rule audit_report:
    """The audit of the whole grid: duplicates per task, source-target overlap, split leakage."""
    input:
        unpack(lambda w: GRID.audit_report_inputs()),
    output:
        tasks="results/audit/tasks.csv",
        overlaps="results/audit/overlap.csv",
        splits="results/audit/splits.csv",
        md=report(
            "results/audit/summary.md",
            caption="../report/audit.rst",
            category="Leakage audit",
        ),
    log:
        logfile("audit_report", "all"),
    benchmark:
        benchfile("audit_report", "all")
    conda:
        ENV
    script:
        "../scripts/audit_report.py"
